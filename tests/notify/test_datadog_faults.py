"""Datadog under faults: DogStatsD is fire-and-forget UDP, so metrics never block, fail or repeat.

The agent is a real UDP socket on 127.0.0.1; "down" is a port nobody listens on (each send then
gets ECONNREFUSED back from the kernel), and the agent coming back is the socket bound again.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from control_room.notifications.datadog import Metrics
from steps.core.contract import EventKind, RunEvent

pytestmark = pytest.mark.integration

PIPELINE = """
from pipelines import Pipeline, step

@step
def one():
    return 1

@step
def two(x):
    return x.read_json() + 1

with Pipeline("dd-faults") as pipeline:
    two(x=one())
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _agent(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.5)
    return sock


def _drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines.extend(line for line in sock.recv(65535).decode().split("\n") if line)
        except TimeoutError:
            return lines


def test_metrics_to_a_missing_agent_cost_the_caller_nothing_and_flow_again_once_it_is_back() -> None:
    port = _free_udp_port()
    metrics = Metrics(environ={"DD_AGENT_HOST": "127.0.0.1", "DD_DOGSTATSD_PORT": str(port)})
    started = time.perf_counter()
    for attempt in range(1, 1001):
        metrics.event(RunEvent(EventKind.TASK_RETRYING, "recipes", "down", task="train", attempt=attempt))
    per_call = (time.perf_counter() - started) / 1000
    assert per_call < 0.002, f"{per_call * 1e6:.0f} µs per metric while the agent is down"

    agent = _agent(port)
    try:
        time.sleep(0.5)  # what was queued while the agent was down has been sent or dropped by now
        _drain(agent)
        metrics.event(RunEvent(EventKind.RUN_STARTED, "recipes", "back"))
        metrics.close()
        lines = _drain(agent)
    finally:
        agent.close()
    assert lines.count("headrace.run.started:1|c|#pipeline:recipes,run:back,trigger:command") == 1


def test_a_run_reports_each_metric_once_to_a_real_agent_and_succeeds_without_one(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(textwrap.dedent(PIPELINE))
    port = _free_udp_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_", "DD_"))}
    env.update(
        HEADRACE_STATE_DIR=str(tmp_path / ".headrace"),
        HEADRACE_CONFIG=str(tmp_path / "headrace.toml"),
        HEADRACE_DATADOG="true",
        DD_AGENT_HOST="127.0.0.1",
        DD_DOGSTATSD_PORT=str(port),
    )

    def run() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", "flow.py:pipeline"]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    without = run()  # nobody listens: the run must not notice beyond one warning
    assert without.returncode == 0, without.stderr
    assert sum("datadog" in line for line in without.stderr.splitlines()) <= 1, without.stderr

    agent = _agent(port)
    try:
        with_agent = run()
        lines = _drain(agent)
    finally:
        agent.close()
    assert with_agent.returncode == 0, with_agent.stderr
    completed = [line for line in lines if line.startswith("headrace.run.completed:1|c|")]
    assert len(completed) == 1 and "status:succeeded" in completed[0], lines
    counts = collections.Counter(line for line in lines if "|c|" in line)
    assert max(counts.values()) == 1, [line for line, n in counts.items() if n > 1]
    assert sum(line.startswith("headrace.task.started:") for line in lines) == 2
