"""The real RabbitMQ (127.0.0.1:5672, started by .ci/run) in a vhost of its own, and the real
``headrace listen`` command as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pika = pytest.importorskip("pika")

HEADER = """
import os, sys, time, json
from pathlib import Path
from pipelines import After, Pipeline, Queue, Retry, Backoff, step
"""


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    """A vhost for this test module, removed (with every queue in it) at the end."""
    name = f"headrace-test-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", name)
    try:
        _ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        _ctl("delete_vhost", name)


@pytest.fixture
def amqp_url(vhost: str) -> str:
    return f"amqp://127.0.0.1:5672/{vhost}"


class Broker:
    """A test's own client of the broker: publish, count and read queues (pika, independently of
    the listener's connection)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _channel(self) -> tuple[Any, Any]:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        return connection, connection.channel()

    def publish(self, queue: str, body: Any, message_id: str | None = None) -> None:
        connection, channel = self._channel()
        try:
            channel.confirm_delivery()
            channel.queue_declare(queue, durable=True)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            channel.basic_publish("", queue, data, pika.BasicProperties(message_id=message_id, delivery_mode=2))
        finally:
            connection.close()

    def count(self, queue: str) -> int:
        """Messages ready in ``queue`` (unacknowledged ones are not counted)."""
        connection, channel = self._channel()
        try:
            return int(channel.queue_declare(queue, durable=True).method.message_count)
        finally:
            connection.close()

    def take_all(self, queue: str) -> list[tuple[bytes, dict[str, Any]]]:
        connection, channel = self._channel()
        found = []
        try:
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return found
                found.append((body, dict(properties.headers or {})))
        finally:
            connection.close()


@pytest.fixture
def broker(amqp_url: str) -> Broker:
    return Broker(amqp_url)


@pytest.fixture
def queue_name() -> str:
    return f"ready.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def flow(tmp_path: Path) -> Callable[[str], str]:
    def write(body: str) -> str:
        path = tmp_path / f"flow_{uuid.uuid4().hex[:8]}.py"
        path.write_text(HEADER + textwrap.dedent(body))
        return f"{path}:pipeline"

    return write


class Listening:
    """A ``headrace listen`` process whose stderr is collected line by line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in self.lines) >= count:
                return
            if self.process.poll() is not None:
                self.reader.join(2)
                if sum(text in line for line in self.lines) >= count:
                    return
                raise AssertionError(f"listener exited {self.process.returncode}:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen in {timeout}s:\n" + "\n".join(self.lines))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def listen(tmp_path: Path) -> Iterator[Callable[..., Listening]]:
    """Start the real ``headrace listen``; waits until it consumes; killed at the test's end."""
    started: list[Listening] = []

    def start(*args: str, ready: str = "consuming", env: dict[str, str] | None = None) -> Listening:
        process = subprocess.Popen(
            [sys.executable, "-c", "from pipelines.cli import main; main()", "listen", *args],
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        listening = Listening(process)
        started.append(listening)
        listening.wait_for(ready)
        return listening

    yield start
    for listening in started:
        if listening.process.poll() is None:
            listening.process.kill()
        listening.process.wait(10)


def wait_until(condition: Callable[[], Any], timeout: float = 30, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{message} not reached in {timeout}s")
