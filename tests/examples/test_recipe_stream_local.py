"""The README's main job: the recipe stream end to end on the embedded default, two days apart.

Everything is real: each task runs in its own process through the entrypoint, BigQuery and Athena
SQL on DuckDB, the training script under SageMaker's contract, scoring on the local Arrow engine,
and the embedded control room (SQLite) sizing the per-class follow-ups.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from examples.recipe_stream import data, pipeline
from pipelines.local import RunSummary, run_pipeline
from steps.core.settings import Settings, load_settings
from steps.storage.artifacts import LocalStore

SPEC = "examples/recipe_stream:pipeline"
EVEN_DAY = dt.date(2026, 11, 22)  # 33/33/33
SKEWED_DAY = dt.date(2026, 12, 1)  # 80/15/5
FOLLOW_UPS = {"cook": "shopping-lists", "save": "reminders", "skip": "refresh"}

pytestmark = pytest.mark.slow


@dataclass
class Day:
    day: dt.date
    summary: RunSummary
    store: LocalStore

    def rows(self, task: str, output: str = "result") -> int:
        rows = self.summary.tasks[task].outputs[output].rows
        assert rows is not None
        return rows

    def json(self, task: str, output: str = "result") -> Any:
        return json.loads(self.store.read_bytes(self.summary.tasks[task].outputs[output].uri))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, Day]:
    from control_room.embedded import connect

    state = tmp_path_factory.mktemp("recipe-stream") / ".headrace"
    settings: Settings = load_settings({"state_dir": str(state)}, environ={}, config_file=state.parent / "absent.toml")
    results: dict[dt.date, Day] = {}
    for day in (EVEN_DAY, SKEWED_DAY):
        room = connect(settings)
        try:
            summary = run_pipeline(
                pipeline,
                spec=SPEC,
                params={"run_date": day.isoformat()},
                settings=settings,
                live=False,
                control_room=room,
                cwd=str(Path(data.__file__).parents[2]),
            )
        finally:
            close = getattr(room, "close", None)
            if close is not None:
                close()
        assert summary.status == "succeeded", {
            n: (t.status, t.reason, t.log_tail[-3:]) for n, t in summary.tasks.items()
        }
        results[day] = Day(day, summary, LocalStore(state / "artifacts"))
    return results


def test_every_task_succeeds_on_both_days(runs: dict[dt.date, Day]) -> None:
    for run in runs.values():
        assert {name: task.status for name, task in run.summary.tasks.items()} == dict.fromkeys(
            pipeline.tasks, "succeeded"
        )


def test_the_extracts_read_exactly_what_the_generator_wrote_for_the_day(runs: dict[dt.date, Day]) -> None:
    for day, run in runs.items():
        written = run.json("sample-data")["tables"]
        yesterday = day - dt.timedelta(days=1)
        assert run.rows("extract-events") == written["recipes.events"]["rows"] == data.event_rows(yesterday)
        assert run.rows("extract-items") == written["recipes.items"]["rows"] == data.DEFAULT_ROWS
        assert written["recipes.items"]["classes"] == data.class_counts(day, data.DEFAULT_ROWS)


def test_per_class_rows_match_the_generator_s_class_mix(runs: dict[dt.date, Day]) -> None:
    for day, run in runs.items():
        expected = data.class_counts(day, data.DEFAULT_ROWS)
        per_class = {outcome: run.rows(f"items-{outcome}") for outcome in FOLLOW_UPS}
        assert sum(per_class.values()) == run.rows("score") == data.DEFAULT_ROWS
        for outcome, rows in per_class.items():
            # The classifier recovers nearly every item's class; a handful may flip.
            assert abs(rows - expected[outcome]) <= data.DEFAULT_ROWS * 0.005, (day, per_class, expected)
        mix_path = LocalStore(run.store.path).local_path(run.summary.tasks["class-mix"].outputs["result"].uri)
        mix = {row["predicted_class"]: row["items"] for row in pq.read_table(mix_path).to_pylist()}
        assert mix == per_class
        for outcome, action in FOLLOW_UPS.items():
            assert run.rows(action, "actions") == per_class[outcome]


def test_sized_follow_ups_got_control_room_decisions_with_reasons(runs: dict[dt.date, Day]) -> None:
    for run in runs.values():
        for action in FOLLOW_UPS.values():
            sizing = run.summary.tasks[action].sizing
            assert sizing is not None, action
            assert sizing.source != "declared", sizing.reason
            assert sizing.memory and sizing.reason
            assert "rows" in sizing.reason
        assert run.summary.tasks["class-mix"].sizing is None, "static tasks are not sized"


def test_two_run_dates_give_different_sizes_that_follow_the_class_mix(runs: dict[dt.date, Day]) -> None:
    """The predicted peaks follow each day's rows per class; the chosen sizes never go against
    them (several peaks may share one catalog size once a run measured the real bytes per row)."""
    from steps.core.quantities import memory_bytes

    def sizes(run: Day) -> tuple[dict[str, int], dict[str, int]]:
        chosen, predicted = {}, {}
        for outcome, action in FOLLOW_UPS.items():
            sizing = run.summary.tasks[action].sizing
            assert sizing is not None and sizing.memory and sizing.predicted_peak_memory_bytes
            chosen[outcome] = memory_bytes(sizing.memory)
            predicted[outcome] = sizing.predicted_peak_memory_bytes
        return chosen, predicted

    (even, even_peaks), (skewed, skewed_peaks) = sizes(runs[EVEN_DAY]), sizes(runs[SKEWED_DAY])
    assert len(set(even.values())) == 1, f"an even mix sizes the three alike: {even}"
    assert skewed_peaks["cook"] > skewed_peaks["save"] > skewed_peaks["skip"], skewed_peaks
    assert skewed["cook"] >= skewed["save"] >= skewed["skip"], skewed
    assert even_peaks != skewed_peaks


def test_summary_reports_rows_sizes_reasons_and_output_locations(runs: dict[dt.date, Day]) -> None:
    for day, run in runs.items():
        report = run.json("summary")
        assert report["run_date"] == day.isoformat()
        assert report["sent_to"] == "console"
        for outcome, action in FOLLOW_UPS.items():
            entry = report["classes"][outcome]
            assert entry["rows"] == run.rows(f"items-{outcome}")
            sizing = run.summary.tasks[action].sizing
            assert sizing is not None
            assert entry["size"]["memory"] == sizing.memory
            assert entry["size"]["reason"] == sizing.reason
            assert entry["output"] == run.summary.tasks[action].outputs["actions"].uri
            assert run.store.exists(entry["output"])
            assert f"{entry['rows']:,}" in report["text"] and action in report["text"]


def test_the_model_is_trained_once_and_reused_on_a_non_training_day(runs: dict[dt.date, Day]) -> None:
    first, second = runs[EVEN_DAY], runs[SKEWED_DAY]
    model = first.summary.tasks["train"].outputs["result"]
    assert model.uri.endswith("model.tar.gz")
    assert second.summary.tasks["train"].outputs["result"] == model


def test_the_readme_command_runs_the_pipeline_and_prints_every_task_and_size(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(data.__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "run", SPEC, "-p", "run_date=2026-12-01"],
        cwd=root,
        env={**os.environ, "HEADRACE_STATE_DIR": str(tmp_path / ".headrace")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Piped, the output is plain lines with nothing cut: no box drawing, no ellipsis, URIs whole.
    assert "│" not in done.stdout and "…" not in done.stdout
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.split()[:1] and "  " in line}
    assert set(rows) >= set(pipeline.tasks)
    for name in pipeline.tasks:
        assert "succeeded" in rows[name], rows[name]
    # On an 80/15/5 day the three follow-ups get three different sizes, largest for the largest class.
    memory = [rows[action].partition("mem ")[2].split()[0] for action in FOLLOW_UPS.values()]
    assert len(set(memory)) == 3, memory
    assert "recipe-stream" in done.stdout and "succeeded in" in done.stdout
    outputs = [line for line in done.stdout.splitlines() if line.strip().startswith("-> file://")]
    assert len(outputs) == 3 and all(line.strip().endswith("/actions.parquet") for line in outputs), outputs
    assert (tmp_path / ".headrace" / "tables" / "recipes" / "items" / "2026-12-01.parquet").is_file()


def test_the_training_and_scoring_logs_are_in_their_tasks_logs(runs: dict[dt.date, Day]) -> None:
    first = runs[EVEN_DAY].summary  # the day that trained
    train_log = Path(first.tasks["train"].log_path or "").read_text()
    assert "validation:accuracy=" in train_log, train_log[-2000:]
    score_log = Path(first.tasks["score"].log_path or "").read_text()
    assert f"scored {data.DEFAULT_ROWS} rows" in score_log, score_log[-2000:]
