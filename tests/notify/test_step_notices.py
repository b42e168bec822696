"""``ctx.notify``: a step's own message reaches Slack once, from a pod or from a local task, retried or not."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from control_room.notifications.notifier import build_notifier
from steps.core.settings import Settings
from steps.runtime.context import StepContext
from tests.control_room.conftest import TOKEN, serve

from .slack_server import VALID_TOKEN, SlackServer

pytestmark = pytest.mark.integration


def slack_settings(server: SlackServer, tmp_path: Path, **changes: str) -> Settings:
    values = {
        "state_dir": str(tmp_path / ".headrace"),
        "slack_token": VALID_TOKEN,
        "slack_api_url": server.api_url,
        "slack_channel": "#ml-alerts",
        **changes,
    }
    return Settings(**values)


def context(settings: Settings, attempt: int) -> StepContext:
    return StepContext(pipeline="recipes", task="summary", run_id="recipes-r1", settings=settings, attempt=attempt)


def test_a_local_steps_message_is_sent_once_although_its_task_ran_twice(
    slack_server: SlackServer, tmp_path: Path, engine: Engine
) -> None:
    settings = slack_settings(slack_server, tmp_path)
    for attempt in (1, 2):  # the first attempt failed after notifying; the retry notifies again
        assert context(settings, attempt).notify("the day's summary") == "slack"
    assert slack_server.state.stored == []  # a step never talks to Slack itself

    notifier = build_notifier(settings, engine=engine, background=False)
    notifier.flush()
    notifier.flush()
    notifier.close()
    assert [m["text"] for m in slack_server.state.stored] == ["the day's summary"]
    assert slack_server.state.delivered_ids() == ["message:recipes/recipes-r1/summary/1"]
    assert not list((tmp_path / ".headrace" / "outbox").glob("*.json"))


def test_without_slack_a_steps_message_is_printed_to_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(state_dir=str(tmp_path / ".headrace"))
    assert context(settings, 1).notify("the day's summary") == "console"
    assert capsys.readouterr().out == "the day's summary\n"


def test_a_pods_message_goes_through_the_control_room_service_and_reaches_slack_once(
    slack_server: SlackServer, tmp_path: Path
) -> None:
    env = {
        "HEADRACE_SLACK_TOKEN": VALID_TOKEN,
        "HEADRACE_SLACK_API_URL": slack_server.api_url,
        "HEADRACE_SLACK_CHANNEL": "#ml-alerts",
    }
    service = serve(f"sqlite:///{tmp_path / 'served.db'}", tmp_path, extra_env=env, notify=True)
    try:
        pod = slack_settings(
            slack_server, tmp_path / "pod", control_room_url=service.url, control_room_token=TOKEN, slack_channel=""
        )
        for attempt in (1, 2):
            assert context(pod, attempt).notify("trained on 1.2M rows", channel="#ml-recipes") == "slack #ml-recipes"
        assert not (tmp_path / "pod" / ".headrace").exists()  # the pod side keeps nothing locally
        deadline = time.monotonic() + 20
        while not slack_server.state.stored and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a second post, if any, would have arrived by now
    finally:
        service.stop()
    assert [(m["channel"], m["text"]) for m in slack_server.state.stored] == [("C0RECIPES", "trained on 1.2M rows")]
