"""Slack under faults: nothing it does can fail, block or duplicate a run's notifications.

``headrace run`` runs for real (a new process, as a user runs it) against the local Slack server
(slack-sdk is real; the server fails with HTTP 500, throttles with 429 + Retry-After, hangs, answers
after the client's timeout, or refuses connections). Afterwards Slack heals and *another*
headrace process, of another kind (``headrace runs list``) in another folder sharing only the
control room's store, sends what is left. Every message, the step's own summary included, must
then be in Slack exactly once: counted by the message metadata id Slack stored with each post.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from control_room.notifications.outbox import slack_outbox

from .slack_server import VALID_TOKEN, SlackServer

pytestmark = pytest.mark.integration

PIPELINE = """
import time
from pathlib import Path
from pipelines import Pipeline, step

@step
def extract(folder):
    return 1

@step
def wait(x, folder):
    Path(folder, "wait.started").write_text("yes")
    deadline = time.monotonic() + 60
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return 2

@step
def summary(y, ctx):
    return ctx.notify(f"{ctx.pipeline} {ctx.run_id}: 3 tasks, all fine", key="summary")

with Pipeline("faults") as pipeline:
    folder = pipeline.param("folder", "")
    summary(y=wait(x=extract(folder=folder), folder=folder))
"""

UNREACHABLE = "slack is not reachable"


class World:
    """One user's setup: a pipeline folder, a second folder, one shared control-room store."""

    def __init__(self, root: Path, slack: SlackServer) -> None:
        self.root = root
        self.slack = slack
        self.work = root / "work"
        self.other = root / "elsewhere"
        for folder in (self.work, self.other):
            folder.mkdir()
        (self.work / "flow.py").write_text(textwrap.dedent(PIPELINE))
        self.db = root / "shared" / "control-room.db"

    def env(self, folder: Path, drain_seconds: float = 3) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_", "SLACK_", "DD_"))}
        env.update(
            HEADRACE_STATE_DIR=str(folder / ".headrace"),
            HEADRACE_CONFIG=str(folder / "headrace.toml"),
            HEADRACE_CONTROL_ROOM_DB=f"sqlite:///{self.db}",
            HEADRACE_SLACK_TOKEN=VALID_TOKEN,
            HEADRACE_SLACK_API_URL=self.slack.api_url,
            HEADRACE_SLACK_CHANNEL="#ml-alerts",
            HEADRACE_SLACK_TIMEOUT_SECONDS="1",
            HEADRACE_SLACK_DRAIN_SECONDS=str(drain_seconds),
        )
        return env

    def headrace(self, *args: str, folder: Path, drain_seconds: float = 3) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
            cwd=folder,
            env=self.env(folder, drain_seconds),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, during: Callable[[], None] = lambda: None) -> tuple[int, str, float]:
        """``headrace run`` the pipeline; ``during`` is called while its middle task waits."""
        started = time.monotonic()
        process = self.headrace("run", "flow.py:pipeline", "-p", f"folder={self.work}", folder=self.work)
        deadline = time.monotonic() + 60
        while not (self.work / "wait.started").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never reached its middle task"
            time.sleep(0.05)
        during()
        (self.work / "go").write_text("yes")
        _, err = process.communicate(timeout=120)
        return process.returncode, err, time.monotonic() - started

    def rows(self) -> list[dict[str, object]]:
        engine = create_engine(f"sqlite:///{self.db}")
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(select(slack_outbox))]
        finally:
            engine.dispose()

    def send_left_over(self) -> float:
        """Another kind of headrace process, in another folder, after Slack healed."""
        started = time.monotonic()
        process = self.headrace("runs", "list", folder=self.other, drain_seconds=30)  # a bound, not a wait
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        return time.monotonic() - started

    def assert_each_message_in_slack_exactly_once(self) -> None:
        rows = self.rows()
        assert rows, "nothing was queued"
        assert {r["status"] for r in rows} == {"sent"}, [(r["key"], r["status"], r["last_error"]) for r in rows]
        assert all(r["sent_version"] == r["version"] for r in rows)  # the parent shows its last state
        delivered = collections.Counter(self.slack.state.delivered_ids())
        assert sorted(delivered) == sorted(str(r["key"]) for r in rows)
        assert max(delivered.values()) == 1, f"posted twice: {[k for k, n in delivered.items() if n > 1]}"
        summary = [m for m in self.slack.state.stored if "all fine" in str(m["text"])]
        assert len(summary) == 1 and summary[0]["thread_ts"] is None
        parent = next(
            m for m in self.slack.state.stored if str(m["metadata"]["event_payload"]["headrace_id"]).endswith("#parent")
        )
        assert "succeeded" in str(parent["text"])


@pytest.fixture
def world(tmp_path: Path, slack_server: SlackServer) -> Iterator[World]:
    yield World(tmp_path, slack_server)
    slack_server.state.heal()


def _break(slack: SlackServer, how: str) -> None:
    if how == "500":
        slack.state.fail_status = 500
    elif how == "429":
        slack.state.rate_limit_next = 1_000_000
        slack.state.retry_after = 1
    elif how == "hang":
        slack.state.hang_seconds = 20
    elif how == "refused":
        slack.stop()


def _heal(slack: SlackServer, how: str) -> None:
    slack.state.heal()
    if how == "refused":
        slack.start()


@pytest.mark.parametrize("how", ["500", "429", "hang", "refused"])
def test_slack_down_at_start_warns_once_and_the_run_succeeds_then_every_message_arrives_once(
    world: World, how: str
) -> None:
    _break(world.slack, how)
    code, err, seconds = world.run()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.strip()]
    assert len(warnings) == 1 and UNREACHABLE in warnings[0], err
    assert seconds < 30, f"the run took {seconds:.1f}s: Slack held it up"
    assert {r["status"] for r in world.rows()} == {"pending"}  # queued, in the shared store

    _heal(world.slack, how)
    world.send_left_over()
    world.assert_each_message_in_slack_exactly_once()


def test_slack_down_mid_run_fails_nothing_and_every_message_arrives_once_after_recovery(world: World) -> None:
    def outage() -> None:
        world.slack.state.fail_status = 500

    code, err, _ = world.run(during=outage)
    assert code == 0, err
    assert UNREACHABLE not in err
    assert any(r["status"] == "pending" for r in world.rows())  # the end of the run could not be sent

    world.slack.state.heal()
    world.send_left_over()
    world.assert_each_message_in_slack_exactly_once()


def test_slack_answering_after_the_client_timeout_never_gets_a_message_twice(world: World) -> None:
    world.slack.state.slow_seconds = 2.0  # the post is done, its answer comes a second too late
    world.slack.state.slow_next = 3
    code, err, _ = world.run()
    assert code == 0, err
    lookups = [c for c in world.slack.state.calls if c.method.startswith("conversations.")]
    assert lookups, "no post was looked for after its answer was lost"

    world.slack.state.heal()
    world.send_left_over()
    world.assert_each_message_in_slack_exactly_once()
