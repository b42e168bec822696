"""Fixtures for the notification tests: a real local Slack API server and the outbox's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import free_port

from .slack_server import SlackServer


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    server = SlackServer(free_port()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    from control_room.store import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'control-room.db'}")
    try:
        yield engine
    finally:
        engine.dispose()
