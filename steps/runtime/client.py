"""Talk to the control room's service over HTTP: what pods and runners use.

Imported by the in-pod entrypoint, so it stays light: only ``steps.core`` and the standard library
(``urllib``), never FastAPI, SQLAlchemy or httpx, and never the store: a pod never opens a
database. With no ``control_room_url`` a pod has no control room (:func:`http_room` returns None and
the task runs with its declared resources); the local runner wires the embedded control room
itself (:func:`control_room.embedded.connect`).

The promise to pipelines: the control room never fails a run. :func:`size_with_fallback` returns
the task's declared resources when the service is unreachable or answers nonsense;
:meth:`HttpControlRoom.observe` and :meth:`HttpControlRoom.emit` retry a few times, then log and
move on.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from steps.core.contract import (
    ControlRoom,
    Observation,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
    to_dict,
)
from steps.core.errors import ConfigError, TransientError, UserError
from steps.core.settings import Settings

log = logging.getLogger("headrace.control_room")


class ControlRoomUnavailable(TransientError):
    """The control room did not answer (connection refused, timeout, 5xx); retrying may help."""


def read_token(settings: Settings) -> str:
    """The bearer token: ``control_room_token`` or the file ``control_room_token_file`` names."""
    if settings.control_room_token:
        return settings.control_room_token.strip()
    if settings.control_room_token_file:
        path = Path(settings.control_room_token_file)
        try:
            return path.read_text().strip()
        except OSError as error:
            raise ConfigError(
                f"control_room_token_file {path}: cannot read it ({error.strerror}); mount the Secret or fix HEADRACE_CONTROL_ROOM_TOKEN_FILE"
            ) from error
    return ""


class HttpControlRoom:
    """The :class:`steps.core.contract.ControlRoom` of a control-room service at ``url``."""

    def __init__(self, url: str, token: str = "", timeout: float = 5.0, retries: int = 3) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = max(1, retries)

    def __repr__(self) -> str:
        return f"HttpControlRoom({self.url!r})"

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            if error.code >= 500:
                raise ControlRoomUnavailable(f"control room {self.url}{path}: HTTP {error.code} {detail}") from error
            raise UserError(f"control room {self.url}{path}: HTTP {error.code} {detail}") from error
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise ControlRoomUnavailable(f"control room {self.url} is unreachable ({reason})") from error
        return json.loads(payload) if payload else None

    def _post_with_retries(self, path: str, body: dict[str, Any]) -> None:
        """POST, retrying transient failures; log (never raise) when every try failed."""
        for attempt in range(1, self.retries + 1):
            try:
                self._post(path, body)
                return
            except ControlRoomUnavailable as error:
                if attempt == self.retries:
                    log.warning("%s; gave up after %d tries", error, attempt)
                    return
                time.sleep(0.2 * 2 ** (attempt - 1))
            except (UserError, ValueError) as error:
                log.warning("control room refused %s: %s", path, error)
                return

    def size(self, request: SizingRequest) -> SizingDecision:
        """Ask for a decision; raises :class:`ControlRoomUnavailable` or :class:`UserError`."""
        answer = self._post("/v1/sizing", to_dict(request))
        try:
            return SizingDecision.from_dict(answer)
        except (TypeError, ValueError, KeyError) as error:
            raise ControlRoomUnavailable(f"control room {self.url} answered a malformed decision ({error})") from error

    def observe(self, observation: Observation) -> None:
        self._post_with_retries("/v1/observations", to_dict(observation))

    def emit(self, event: RunEvent) -> None:
        self._post_with_retries("/v1/events", to_dict(event))

    def notify(self, message: dict[str, Any]) -> None:
        """Queue a step's message in the service's outbox (idempotent by ``message["id"]``)."""
        self._post_with_retries("/v1/notifications", message)


def http_room(settings: Settings) -> HttpControlRoom | None:
    """The service at ``control_room_url``, or None when none is set (a pod then uses its declared
    resources: it never sizes against a database of its own)."""
    if not settings.control_room_url:
        return None
    return HttpControlRoom(settings.control_room_url, read_token(settings))


def declared_decision(request: SizingRequest, why: str) -> SizingDecision:
    """The task's own declared resources as a decision (source ``declared``)."""
    declared = request.declared or {}
    cpu = declared.get("cpu")
    memory = declared.get("memory")
    instance_type = declared.get("instance_type")
    if not instance_type:
        instance_type = f"pod-{cpu or 'default'}-{memory or 'default'}" if request.target == SizingTarget.POD else ""
    count = declared.get("instance_count") or 1
    return SizingDecision(
        target=SizingTarget(request.target),
        instance_type=str(instance_type),
        instance_count=int(count),
        cpu=str(cpu) if cpu is not None else None,
        memory=str(memory) if memory is not None else None,
        reason=f"{why}; using the declared resources",
        source="declared",
    )


def size_with_fallback(
    room: ControlRoom | None, request: SizingRequest, log_line: Callable[[str], None] | None = None
) -> SizingDecision:
    """The control room's decision, or the declared resources when it cannot give one. Never raises."""
    say = log_line or _stderr_line
    if room is None:
        decision = declared_decision(request, "no control room configured")
    else:
        try:
            decision = room.size(request)
        except Exception as error:  # the control room never fails a pipeline
            decision = declared_decision(request, f"control room unavailable ({_one_line(error)})")
    say(
        f"sizing {request.pipeline}/{request.task}: {decision.instance_type} x{decision.instance_count} - {decision.reason}"
    )
    return decision


def _one_line(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def _stderr_line(message: str) -> None:
    print(f"[headrace] {message}", file=sys.stderr, flush=True)
