"""A step's own notification (``ctx.notify(...)``): queued for the outbox, never sent from the step.

A step must not talk to Slack itself: an outage would fail it, a slow answer would block it and a
lost answer would make its retry post twice. Instead the message is handed to the outbox (see
:mod:`control_room.notifications.outbox`), which sends it exactly once, in the background, whenever Slack answers:

- **with a control room service** (``control_room_url``: every Argo pod, and local runs that use
  one): ``POST /v1/notifications`` — the pod side never opens a database;
- **locally without one**: a JSON file in ``<state_dir>/outbox/`` (written atomically), which the
  run's notifier moves into the control room's store at its next pass;
- **no Slack configured**: the text is printed to the task's log.

Each message has an id, ``<pipeline>/<run_id>/<key>``; ``key`` defaults to ``<task>/<n>`` (the
step's n-th message), so a retried or resumed task queues the message once, not once per attempt.
Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from steps.core.settings import Settings

log = logging.getLogger("headrace.notify")

SPOOL_FOLDER = "outbox"


def spool_dir(settings: Settings) -> Path:
    """Where steps leave messages for the local runner's notifier."""
    return settings.state_path / SPOOL_FOLDER


def destination(settings: Settings, channel: str) -> str:
    """Where a message goes, in words: ``slack #ml-recipes``, ``slack webhook`` or ``console``."""
    if settings.slack_token:
        return f"slack {channel}" if channel else "slack"
    if settings.slack_webhook_url:
        return "slack webhook"
    return "console"


def notify(
    settings: Settings,
    *,
    pipeline: str,
    run_id: str,
    key: str,
    text: str,
    blocks: list[dict[str, Any]] | None = None,
    channel: str = "",
) -> str:
    """Queue one message (see the module docstring); returns :func:`destination`. Never raises."""
    where = destination(settings, channel)
    if where == "console":
        print(text, flush=True)
        return where
    message = {
        "id": f"{pipeline}/{run_id}/{key}",
        "pipeline": pipeline,
        "run_id": run_id,
        "channel": channel,
        "text": text,
        "blocks": blocks or [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}],
    }
    try:
        if settings.control_room_url:
            from steps.runtime.client import HttpControlRoom, read_token

            HttpControlRoom(settings.control_room_url, read_token(settings)).notify(message)
        else:
            write_spooled(spool_dir(settings), message)
    except Exception as error:  # a notification never fails a step
        log.warning("notify: could not queue %s (%s); the message is only in this log:\n%s", message["id"], error, text)
    return where


def write_spooled(folder: Path, message: dict[str, Any]) -> Path:
    """Write ``message`` into ``folder`` atomically (a reader never sees half a file)."""
    folder.mkdir(parents=True, exist_ok=True)
    ident = str(message["id"])
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in ident)[:100]
    name = f"{readable}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(message, out)
    target = folder / f"{name}.json"
    os.replace(temporary, target)
    return target


def read_spooled(folder: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The messages waiting in ``folder``, oldest first; unreadable files are skipped (and kept)."""
    try:
        paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    for path in paths:
        try:
            yield path, json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
