"""A triggered run is reported like any run, and says what started it: Slack (slack-sdk against a
real local HTTP server), Datadog (DogStatsD on a real UDP socket), the control room's page."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from control_room.catalog import load_catalog
from control_room.page import render_page
from control_room.store import Store
from tests.conftest import free_port
from tests.listen.conftest import Broker, Listening, wait_until
from tests.notify.slack_server import VALID_TOKEN, SlackServer

pytestmark = pytest.mark.integration


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def agent() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def test_triggered_run_tells_slack_datadog_and_the_page_what_started_it(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    slack: SlackServer,
    agent: socket.socket,
    isolated_headrace: Path,
) -> None:
    spec = flow(f"""
@step(sizing="auto")
def work(day: str = "") -> str:
    return day

with Pipeline("daily", triggers=[Queue({amqp_url!r}, queue={queue_name!r}, params={{"run_date": "$.date"}})]) as pipeline:
    work(day=pipeline.run_date)
""")
    env = {
        "HEADRACE_SLACK_TOKEN": VALID_TOKEN,
        "HEADRACE_SLACK_API_URL": slack.api_url,
        "HEADRACE_SLACK_CHANNEL": "#ml-alerts",
        "HEADRACE_DATADOG": "true",
        "DD_AGENT_HOST": "127.0.0.1",
        "DD_DOGSTATSD_PORT": str(agent.getsockname()[1]),
    }
    listen(spec, env=env)
    broker.publish(queue_name, {"date": "2026-12-01"}, message_id="obs-1")
    started_by = f"Started by amqp queue {queue_name}, message obs-1"

    def slack_says_so() -> bool:
        messages = [*slack.state.posted(), *slack.state.updates()]
        return any(started_by in str(m.get("blocks")) and "succeeded" in str(m.get("blocks")) for m in messages)

    wait_until(slack_says_so, timeout=60, message="Slack message naming the trigger")
    lines: list[str] = []

    def datadog_says_so() -> bool:
        with contextlib.suppress(TimeoutError):
            lines.extend(agent.recv(65535).decode().split("\n"))
        return any(line.startswith("headrace.run.started:1|c") and "trigger:amqp" in line for line in lines)

    wait_until(datadog_says_so, timeout=30, message="run.started tagged trigger:amqp")
    store = Store.open(None, isolated_headrace)
    try:
        page = render_page(store, load_catalog())
    finally:
        store.close()
    assert f"by amqp queue {queue_name}, message obs-1" in page
