"""A finished run publishes its completion on the broker: from the local runner and from the Argo
exit handler (run here as the pod runs it), read back by an independent consumer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.listen.conftest import pika

pytestmark = pytest.mark.integration


@pytest.fixture
def completions(amqp_url: str) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """Bind a fresh queue to the completions exchange for ``<pipeline>.*``; read what arrived."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.exchange_declare("headrace.runs", exchange_type="topic", durable=True)
    queue = f"completions.{uuid.uuid4().hex[:8]}"
    channel.queue_declare(queue, exclusive=True)

    def bind_and_read(pipeline: str) -> list[dict[str, Any]]:
        channel.queue_bind(queue, "headrace.runs", routing_key=f"{pipeline}.*")
        return []

    def read() -> list[dict[str, Any]]:
        found = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            found.append({"routing_key": method.routing_key, "message_id": properties.message_id, **json.loads(body)})

    bind_and_read.read = read  # type: ignore[attr-defined]
    yield bind_and_read
    connection.close()


def _headrace(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


FLOW = """
@step(outputs=("rows",))
def extract(day: str = ""):
    import pandas as pd

    return pd.DataFrame({"day": [day] * 3, "n": [0, 1, 2]})

with Pipeline("NAME") as pipeline:
    extract(day=pipeline.run_date)
"""


def test_local_run_publishes_its_completion_with_output_sizes(
    flow: Callable[[str], str], completions: Any, amqp_url: str, tmp_path: Path
) -> None:
    name = f"done-{uuid.uuid4().hex[:6]}"
    spec = flow(FLOW.replace("NAME", name))
    completions(name)
    result = _headrace("run", spec, "-p", "run_date=2026-12-01", cwd=tmp_path, env={"HEADRACE_EVENTS_URL": amqp_url})
    assert result.returncode == 0, result.stderr
    [message] = completions.read()
    assert message["routing_key"] == f"{name}.succeeded"
    assert (message["pipeline"], message["date"], message["outcome"]) == (name, "2026-12-01", "succeeded")
    assert message["message_id"] == f"completion:{message['run']}:succeeded"
    sizes = message["outputs"]["extract.rows"]
    assert sizes["rows"] == 3 and sizes["bytes"] > 0


def test_exit_handler_publishes_the_workflows_completion_with_its_day(
    flow: Callable[[str], str], completions: Any, amqp_url: str, tmp_path: Path
) -> None:
    name = f"argo-{uuid.uuid4().hex[:6]}"
    spec = flow(FLOW.replace("NAME", name))
    completions(name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "steps",
            "exit-handler",
            spec,
            "--run-id",
            f"{name}-x7k2p",
            "--status",
            "Failed",
            "--duration",
            "12",
            "--failures",
            "[]",
            "--run-date",
            "2026-12-01T18:00:00Z",
        ],
        cwd=tmp_path,
        env={**os.environ, "HEADRACE_EVENTS_URL": amqp_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [message] = completions.read()
    assert message["routing_key"] == f"{name}.failed"
    assert (message["run"], message["date"], message["outcome"]) == (f"{name}-x7k2p", "2026-12-01", "failed")


def test_a_broker_that_is_down_costs_a_warning_never_the_run(flow: Callable[[str], str], tmp_path: Path) -> None:
    spec = flow(FLOW.replace("NAME", "lonely"))
    result = _headrace("run", spec, cwd=tmp_path, env={"HEADRACE_EVENTS_URL": "amqp://127.0.0.1:1/"})
    assert result.returncode == 0, result.stderr
    assert "completion not published" in result.stderr
