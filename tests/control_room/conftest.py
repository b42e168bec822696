"""Fixtures for the control room: the shipped catalog and policy, stores on SQLite and PostgreSQL,
and a real ``headrace control-room serve`` process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from control_room.catalog import Catalog, Rules, load_catalog, load_rules
from control_room.schema import metadata
from control_room.sizing import Policy
from control_room.store import Store, make_engine

TOKEN = "test-token-7f3a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="session")
def rules(catalog: Catalog) -> Rules:
    return load_rules(None, catalog)


@pytest.fixture(scope="session")
def policy(catalog: Catalog, rules: Rules) -> Policy:
    return Policy(catalog, rules)


def fresh_postgres(url: str) -> str:
    """Empty the session's PostgreSQL database so each test starts from a blank schema."""
    engine = make_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration])])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A blank database URL: a SQLite file, then the machine's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control-room.db'}"
    return fresh_postgres(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    yield opened
    opened.close()


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def serve(
    db: str,
    tmp_path: Path,
    token: str = TOKEN,
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
    notify: bool = False,
) -> Served:
    """Start ``headrace control-room serve`` in a subprocess and wait until /healthz answers
    (``notify``: with the notifier its settings ask for, else ``--no-notify``)."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(
        {
            "HEADRACE_STATE_DIR": str(tmp_path / "state"),
            "HEADRACE_CONFIG": str(tmp_path / "headrace.toml"),
            "HEADRACE_CONTROL_ROOM_TOKEN": token,
            **(extra_env or {}),
        }
    )
    log = tmp_path / f"serve-{port}.log"
    command = [
        sys.executable,
        "-c",
        "from pipelines.cli import main; main()",
        "control-room",
        "serve",
        "--port",
        str(port),
        "--db",
        db,
        *([] if notify else ["--no-notify"]),
        "--workers",
        str(workers),
    ]
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2]
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"control room exited with {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return Served(url, process, log)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"control room did not answer on {url}: {log.read_text()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A control room service on SQLite in a subprocess."""
    running = serve(f"sqlite:///{tmp_path / 'served.db'}", tmp_path)
    yield running
    running.stop()
