"""Slack notifications through slack-sdk against a real local Slack API server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from control_room.notifications.notifier import Notifier, build_notifier
from control_room.notifications.outbox import Outbox, OutboxDrainer
from control_room.notifications.slack import RunSummary, SlackSender, run_message
from pipelines.graph import Notify
from steps.core.contract import EventKind, RunEvent
from steps.core.errors import ConfigError
from steps.core.settings import Settings

from .slack_server import VALID_TOKEN, SlackServer

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0
SIZING = {"target": "sagemaker", "instance_type": "ml.m5.2xlarge", "instance_count": 2}


def settings_for(server: SlackServer, tmp_path: Path, **changes: str) -> Settings:
    values = {
        "state_dir": str(tmp_path / ".headrace"),
        "slack_token": VALID_TOKEN,
        "slack_api_url": server.api_url,
        "slack_channel": "#ml-alerts",
        "argo_ui_url": "https://argo.example.com",
        "argo_namespace": "ml",
        "slack_mentions": "<!here>",
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def notifier(slack_server: SlackServer, tmp_path: Path, engine: Engine) -> Iterator[Notifier]:
    built = build_notifier(settings_for(slack_server, tmp_path), engine=engine, background=False)
    try:
        yield built
    finally:
        built.close()


def ev(kind: EventKind, task: str | None = None, **kw: object) -> RunEvent:
    return RunEvent(kind=kind, pipeline="recipes", run_id="recipes-abc12", task=task, **kw)  # type: ignore[arg-type]


def failing_run() -> list[RunEvent]:
    return [
        ev(EventKind.RUN_STARTED, at=T0),
        ev(EventKind.SIZING_DECIDED, "train", sizing=SIZING, at=T0 + 1),
        ev(EventKind.TASK_STARTED, "extract", attempt=1, at=T0 + 1),
        ev(
            EventKind.TASK_SUCCEEDED,
            "extract",
            attempt=1,
            duration_seconds=12.5,
            output_bytes=1_200_000,
            output_rows=10_000,
        ),
        ev(EventKind.TASK_RETRYING, "train", attempt=2, reason="OOMKilled (exit code 137)", sizing=SIZING),
        ev(
            EventKind.TASK_FAILED,
            "train",
            attempt=2,
            reason="OOMKilled (exit code 137)",
            log_tail=["epoch 3/10", "MemoryError"],
            sizing=SIZING,
        ),
        ev(EventKind.RUN_FAILED, "train", reason="OOMKilled (exit code 137)", duration_seconds=252.0, at=T0 + 252),
    ]


def test_failed_run_message_shows_task_reason_log_tail_sizes_and_argo_link() -> None:
    summary = RunSummary(pipeline="recipes", run_id="recipes-abc12", mentions=["<!here>"])
    for event in failing_run():
        summary = summary.apply(event, default_url="https://argo.example.com/workflows/ml/recipes-abc12")

    message = run_message(summary)

    assert message.text == "recipes run recipes-abc12 failed in 4m 12s: train — OOMKilled (exit code 137)"
    assert message.blocks == [
        {"type": "header", "text": {"type": "plain_text", "text": ":x: recipes · failed", "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Pipeline*\nrecipes"},
                {
                    "type": "mrkdwn",
                    "text": "*Run*\n<https://argo.example.com/workflows/ml/recipes-abc12|recipes-abc12>",
                },
                {"type": "mrkdwn", "text": "*Status*\nfailed"},
                {"type": "mrkdwn", "text": "*Duration*\n4m 12s"},
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "<!here> *Failed:* `train` — OOMKilled (exit code 137)"},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "```epoch 3/10\nMemoryError```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "*Sizes* train: ml.m5.2xlarge x2"}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open in Argo"},
                    "url": "https://argo.example.com/workflows/ml/recipes-abc12",
                    "action_id": "open_argo",
                }
            ],
        },
    ]


def test_run_gets_one_channel_message_updated_in_place_and_task_events_threaded_under_it(
    notifier: Notifier, slack_server: SlackServer
) -> None:
    events = failing_run()
    notifier(events[0])
    assert notifier.flush() == 1
    for event in events[1:]:
        notifier(event)
    notifier.flush()

    state = slack_server.state
    top_level = [p for p in state.posted() if "thread_ts" not in p]
    replies = [p for p in state.posted() if "thread_ts" in p]
    assert len(top_level) == 1 and top_level[0]["channel"] == "#ml-alerts"
    parent_ts = next(ts for ts, body in state.messages.items() if "thread_ts" not in body)
    assert {r["thread_ts"] for r in replies} == {parent_ts}
    texts = [r["text"] for r in replies]
    assert texts[0] == ":white_check_mark: `extract` succeeded in 12.5s · 1.1 MiB, 10,000 rows"
    assert texts[1] == ":repeat: `train` retrying (attempt 2): OOMKilled (exit code 137)"
    assert texts[2] == ":x: `train` failed (attempt 2): OOMKilled (exit code 137)"
    assert texts[3] == "<!here> :x: run failed: `train` failed: OOMKilled (exit code 137)"
    assert replies[3].get("reply_broadcast") is True and "reply_broadcast" not in replies[2]
    assert replies[2]["blocks"][1] == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "```epoch 3/10\nMemoryError```"},
    }
    # The parent was updated in place to the final state (only the newest version is sent).
    updates = state.updates()
    assert len(updates) == 1 and updates[0]["ts"] == parent_ts
    assert updates[0]["text"] == "recipes run recipes-abc12 failed in 4m 12s: train — OOMKilled (exit code 137)"
    assert state.messages[parent_ts]["blocks"][0]["text"]["text"] == ":x: recipes · failed"
    assert notifier.outbox is not None and notifier.outbox.counts() == {"pending": 0, "sent": 5, "failed": 0}


def test_rate_limited_post_is_retried_after_the_retry_after_delay(
    notifier: Notifier, slack_server: SlackServer
) -> None:
    slack_server.state.rate_limit_next = 1
    slack_server.state.retry_after = 1

    notifier(ev(EventKind.RUN_STARTED, at=T0))
    assert notifier.flush() == 1

    calls = slack_server.state.calls
    assert [c.method for c in calls] == ["auth.test", "429", "chat.postMessage"]
    assert calls[2].at - calls[1].at >= 1.0
    assert len(slack_server.state.posted()) == 1


def test_slack_outage_queues_messages_and_delivers_each_exactly_once_when_slack_is_back(
    notifier: Notifier, slack_server: SlackServer, caplog: pytest.LogCaptureFixture
) -> None:
    slack_server.stop()
    events = failing_run()
    for event in events:
        notifier(event)  # must not raise while Slack is down
    notifier(events[-1])  # the watcher and the exit handler both report the failure
    assert notifier.flush() == 0
    assert notifier.outbox is not None
    assert notifier.outbox.counts()["pending"] == 5

    slack_server.start()
    drainer = notifier.drainer
    assert drainer is not None
    assert drainer.drain(now=time.time() + 3600) == 5  # past the backoff
    assert drainer.drain(now=time.time() + 7200) == 0

    posted = slack_server.state.posted()
    assert len(posted) == 5
    assert len({(p.get("thread_ts"), p["text"]) for p in posted}) == 5
    assert next(p for p in posted if "thread_ts" not in p)["text"].startswith("recipes run recipes-abc12 failed")
    assert slack_server.state.updates() == []  # the parent was first posted in its final state
    assert notifier.outbox.counts() == {"pending": 0, "sent": 5, "failed": 0}


def test_two_drains_at_once_never_send_a_message_twice(
    slack_server: SlackServer, tmp_path: Path, engine: Engine
) -> None:
    settings = settings_for(slack_server, tmp_path)
    outbox = Outbox(engine)
    sender = SlackSender(token=VALID_TOKEN, base_url=slack_server.api_url)
    notifier = Notifier(settings, slack=sender, outbox=outbox, background=False)
    for i in range(10):
        notifier(RunEvent(EventKind.RUN_STARTED, "recipes", f"run-{i}", at=T0))
    drainers = [OutboxDrainer(outbox, sender), OutboxDrainer(outbox, sender)]
    threads = [threading.Thread(target=d.drain) for d in drainers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    texts = [p["text"] for p in slack_server.state.posted()]
    assert sorted(texts) == sorted(f"recipes run run-{i} running" for i in range(10))


def test_invalid_token_fails_at_startup_with_one_clear_error(slack_server: SlackServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        build_notifier(settings_for(slack_server, tmp_path, slack_token="xoxb-revoked"))

    assert str(raised.value).startswith("slack_token: invalid_auth — Slack rejected the token")
    assert "\n" not in str(raised.value)
    assert [c.method for c in slack_server.state.calls] == ["auth.test"]


def test_unknown_channel_is_reported_once_clearly_and_never_retried(
    slack_server: SlackServer, tmp_path: Path, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = build_notifier(
        settings_for(slack_server, tmp_path, slack_channel="#no-such-channel"), engine=engine, background=False
    )
    with caplog.at_level(logging.ERROR, logger="headrace.slack"):
        for event in failing_run():
            notifier(event)
        notifier.flush()
        notifier.flush()

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "slack channel '#no-such-channel': channel_not_found — no such channel; fix slack_channel "
        "(or slack_channels / Notify(slack_channel=...))"
    ]
    posts = slack_server.state.posted()
    assert len(posts) == 1  # the parent was tried once; its replies are not sent without it
    assert notifier.outbox is not None and notifier.outbox.counts() == {"pending": 0, "sent": 0, "failed": 5}


def test_pipeline_channel_and_failures_only_come_from_its_notify(
    slack_server: SlackServer, tmp_path: Path, engine: Engine
) -> None:
    class Recipes:
        name = "recipes"
        notify = Notify(slack_channel="#ml-recipes", failures_only=True, mentions=("<@U42>",))

    notifier = build_notifier(settings_for(slack_server, tmp_path), engine=engine, background=False)
    notifier.register(Recipes())
    for event in failing_run():
        notifier(event)
    notifier.flush()

    posted = slack_server.state.posted()
    assert {p["channel"] for p in posted} == {"#ml-recipes"}
    assert [p["text"] for p in posted if "thread_ts" in p] == [
        ":x: `train` failed (attempt 2): OOMKilled (exit code 137)",
        "<@U42> :x: run failed: `train` failed: OOMKilled (exit code 137)",
    ]


def test_pipeline_channel_mapping_in_settings_routes_each_pipeline(
    slack_server: SlackServer, tmp_path: Path, engine: Engine
) -> None:
    settings = settings_for(slack_server, tmp_path, slack_channels="recipes=#ml-recipes, churn=C0123")
    notifier = build_notifier(settings, engine=engine, background=False)
    notifier(RunEvent(EventKind.RUN_STARTED, "recipes", "r1"))
    notifier(RunEvent(EventKind.RUN_STARTED, "churn", "c1"))
    notifier(RunEvent(EventKind.RUN_STARTED, "other", "o1"))
    notifier.flush()

    assert [(p["channel"], p["text"]) for p in slack_server.state.posted()] == [
        ("#ml-recipes", "recipes run r1 running"),
        ("C0123", "churn run c1 running"),
        ("#ml-alerts", "other run o1 running"),
    ]


def test_incoming_webhook_posts_run_ends_and_failures_without_threads(
    slack_server: SlackServer, tmp_path: Path, engine: Engine
) -> None:
    settings = settings_for(slack_server, tmp_path, slack_token="", slack_webhook_url=slack_server.webhook_url)
    notifier = build_notifier(settings, engine=engine, background=False)
    for event in failing_run():
        notifier(event)
    notifier.flush()

    sent = [c.body for c in slack_server.state.calls if c.method == "webhook"]
    assert [b["text"] for b in sent] == [
        "recipes run recipes-abc12 running",
        "recipes recipes-abc12: :x: `train` failed (attempt 2): OOMKilled (exit code 137)",
        "recipes run recipes-abc12 failed in 4m 12s: train — OOMKilled (exit code 137)",
    ]
    assert sent[2]["blocks"][2]["text"]["text"] == "<!here> *Failed:* `train` — OOMKilled (exit code 137)"
    assert sent[2]["blocks"][4] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "*Sizes* train: ml.m5.2xlarge x2"}],
    }


def test_bad_channel_mapping_is_one_clear_config_error(slack_server: SlackServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"slack_channels: 'recipes' is not PIPELINE=CHANNEL"):
        build_notifier(settings_for(slack_server, tmp_path, slack_channels="recipes"))


@pytest.mark.postgres
def test_two_control_room_replicas_on_postgresql_never_send_a_message_twice(
    slack_server: SlackServer, tmp_path: Path, postgres_url: str
) -> None:
    from control_room.schema import metadata
    from control_room.store import make_engine

    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    metadata.drop_all(engines[0])  # a blank schema: the session database is shared
    try:
        replicas = [build_notifier(settings_for(slack_server, tmp_path), engine=e, background=False) for e in engines]
        for event in failing_run():
            for replica in replicas:  # both replicas hear every event (watcher, exit handler, API)
                replica(event)
        threads = [threading.Thread(target=r.flush) for r in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for replica in replicas:
            replica.flush()

        posted = slack_server.state.posted()
        assert len(posted) == 5
        assert len({(p.get("thread_ts"), p["text"]) for p in posted}) == 5
        assert replicas[0].outbox is not None and replicas[0].outbox.counts() == {"pending": 0, "sent": 5, "failed": 0}
        for replica in replicas:
            replica.close()
    finally:
        for engine in engines:
            engine.dispose()
