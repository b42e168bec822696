"""Fixtures shared by every test: isolated headrace state, free ports, real local servers."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

# A test suite started in the background (`cmd &` from a script, CI's nohup) inherits SIGINT
# ignored, and so does every `headrace` it starts: the Ctrl-C tests would send a signal nobody
# hears. Restored once here, children start with the default Ctrl-C as at a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def isolated_headrace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own state folder and no inherited HEADRACE_* or cloud settings."""
    for name in list(os.environ):
        if name.startswith(("HEADRACE_", "AWS_", "ARGO_", "DD_", "SLACK_")):
            monkeypatch.delenv(name, raising=False)
    state = tmp_path / ".headrace"
    monkeypatch.setenv("HEADRACE_STATE_DIR", str(state))
    monkeypatch.setenv("HEADRACE_CONFIG", str(tmp_path / "headrace.toml"))
    monkeypatch.setenv("HEADRACE_CACHE_DIR", str(tmp_path / "cache"))
    yield state


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server on 127.0.0.1 (S3, SageMaker, Glue, Athena...); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server with dummy credentials; yields the endpoint URL."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("HEADRACE_AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("HEADRACE_AWS_REGION", "us-east-1")
    return moto_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL (127.0.0.1:5432, trust auth), dropped after
    the session."""
    import uuid

    try:
        import psycopg
    except ImportError:  # pragma: no cover - the [postgres] extra is part of the test install
        pytest.fail("psycopg is not installed; install headrace[postgres,dev]")
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    name = f"headrace_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({error}); start it as .ci/run does")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
