"""The README's event example: a "data ready" message runs the recipe stream for that day, and its
completion runs the digest, on the real RabbitMQ (the recipe stream itself runs for real too)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runs import RunStore
from tests.listen.conftest import Listening, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_data_ready_message_runs_the_day_and_its_completion_runs_the_digest(
    listen: Callable[..., Listening], amqp_url: str, isolated_headrace: Path
) -> None:
    from examples.recipe_events import publish_ready

    env = {"RECIPES_BROKER_URL": amqp_url, "HEADRACE_EVENTS_URL": amqp_url, "PYTHONPATH": str(ROOT)}
    listen("examples.recipe_events:daily", "examples.recipe_events:digest", "--concurrency", "2", env=env)
    publish_ready("2026-12-01", amqp_url)

    def finished() -> dict[str, tuple[str, str]]:
        store = RunStore(isolated_headrace / "runs.db")
        try:
            return {r.pipeline: (r.status, r.run_date) for r in store.list_runs() if r.status != "running"}
        finally:
            store.close()

    done = wait_until(lambda: len(finished()) == 2 and finished(), timeout=240, message="both runs finished")
    assert done == {"recipe-stream": ("succeeded", "2026-12-01"), "recipe-digest": ("succeeded", "2026-12-01")}
    store = RunStore(isolated_headrace / "runs.db")
    try:
        [digest] = store.list_runs(pipeline="recipe-digest")
        [daily] = store.list_runs(pipeline="recipe-stream")
        [attempt] = store.attempts(digest.id)
        assert store.started_by(daily.id) == "amqp queue recipes.ready, message recipes-ready-2026-12-01"
    finally:
        store.close()
    assert attempt.records["summary"].startswith(f"2026-12-01: run {daily.id} produced ")
    assert "items scored" in attempt.records["summary"] and " 0 items" not in attempt.records["summary"]
