"""What no reconnect can fix is one line and exit code 2 from ``headrace listen``, not a retry loop."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.listen.conftest import pika

pytestmark = pytest.mark.integration


def listen(spec: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "listen", spec],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def daily(url: str, exchange: str = "headrace.events") -> str:
    return f"""
@step
def work() -> int:
    return 1

with Pipeline("daily", triggers=[Queue({url!r}, queue="daily.ready", exchange={exchange!r})]) as pipeline:
    work()
"""


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_refused_login_is_one_line_naming_the_settings(
    flow: Callable[[str], str], amqp_url: str, tmp_path: Path
) -> None:
    result = listen(flow(daily(amqp_url)), tmp_path, HEADRACE_BROKER_USERNAME="guest", HEADRACE_BROKER_PASSWORD="wrong")
    assert result.returncode == 2, result.stderr
    [line] = errors(result)
    assert line.startswith(f"error: broker {amqp_url.replace('127.0.0.1:5672', '127.0.0.1:5672')}: login refused")
    assert line.endswith("check HEADRACE_BROKER_USERNAME and HEADRACE_BROKER_PASSWORD")
    assert "wrong" not in result.stderr


def test_an_exchange_declared_otherwise_is_one_line(flow: Callable[[str], str], amqp_url: str, tmp_path: Path) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        connection.channel().exchange_declare("odd.exchange", exchange_type="direct", durable=True)
    finally:
        connection.close()
    result = listen(flow(daily(amqp_url, exchange="odd.exchange")), tmp_path)
    assert result.returncode == 2, result.stderr
    [line] = errors(result)
    assert "PRECONDITION_FAILED" in line and "odd.exchange" in line
    assert "Traceback" not in result.stderr
