"""The runner's side of the control room: sizing requests, observations, run events.

Everything here is best effort: the control room helps a run, it must never fail one, nor slow
it. A sizing call that fails falls back to the task's declared resources (and says so in the
decision's reason); a failed ``observe`` or ``emit`` is dropped. :class:`RoomWorker` makes every
call on one background thread, so an HTTP control room that is slow or down (retries, timeouts)
never holds up the scheduler, and :class:`LazyRoom` connects on that thread, so importing the
embedded control room (~0.5 s: SQLAlchemy, numpy) overlaps the first tasks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from steps.core.contract import (
    ControlRoom,
    EventKind,
    Observation,
    Outcome,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
)

#: How long the runner waits for a sizing answer before using the declared resources.
SIZE_TIMEOUT_SECONDS = 60.0


class LazyRoom:
    """A control room connected on first use (from the worker thread); None-safe when it fails."""

    def __init__(self, connect: Callable[[], ControlRoom | None]) -> None:
        self._connect = connect
        self._room: ControlRoom | None = None
        self._connected = False
        self.error: str | None = None

    def _get(self) -> ControlRoom | None:
        if not self._connected:
            self._connected = True
            try:
                self._room = self._connect()
            except Exception as error:
                self.error = f"{type(error).__name__}: {error}"
        return self._room

    def size(self, request: SizingRequest) -> SizingDecision:
        room = self._get()
        if room is None:
            raise ConnectionError(f"no control room ({self.error or 'not configured'})")
        return room.size(request)

    def observe(self, observation: Observation) -> None:
        room = self._get()
        if room is not None:
            room.observe(observation)

    def emit(self, event: RunEvent) -> None:
        room = self._get()
        if room is not None:
            room.emit(event)

    def close(self) -> None:
        close = getattr(self._room, "close", None)
        if close is not None:
            close()


class RoomWorker:
    """Calls one control room from a single background thread, in order.

    The thread makes no call (so a lazy room does not connect, importing SQLAlchemy and the store)
    until :meth:`open`: the runner opens it once its first task has started, or a sizing request
    opens it at once. The first task's start no longer shares the machine with those imports."""

    def __init__(self, room: ControlRoom) -> None:
        self.room = room
        self._calls: queue.Queue[tuple[Callable[[], Any], Future[Any]] | None] = queue.Queue()
        self._gate = threading.Event()
        self._thread = threading.Thread(target=self._work, name="control-room", daemon=True)
        self._thread.start()

    def open(self) -> None:
        """Let the queued calls through (idempotent)."""
        self._gate.set()

    def _work(self) -> None:
        self._gate.wait()
        while True:
            item = self._calls.get()
            if item is None:
                return
            call, future = item
            try:
                future.set_result(call())
            except BaseException as error:
                future.set_exception(error)

    def _submit(self, call: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((call, future))
        return future

    def size(self, request: SizingRequest) -> SizingDecision:
        self.open()
        decision: SizingDecision = self._submit(lambda: size(self.room, request)).result(SIZE_TIMEOUT_SECONDS)
        return decision

    def observe(self, observation: Observation) -> None:
        self._submit(lambda: self.room.observe(observation))

    def emit(self, event: RunEvent) -> None:
        self._submit(lambda: self.room.emit(event))

    def drain(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (at most ``timeout`` seconds), then stop the thread."""
        self._calls.put(None)
        self.open()
        self._thread.join(timeout)


def size(room: ControlRoom | None, request: SizingRequest) -> SizingDecision:
    """Ask the control room; never raises: without an answer, the task's declared resources
    (:func:`steps.runtime.client.size_with_fallback`, the rule pods follow too)."""
    from steps.runtime.client import size_with_fallback  # urllib's HTTP stack: only when a task is sized

    return size_with_fallback(room, request, log_line=_quiet)


def _quiet(line: str) -> None:
    """The live view shows the decision; a stderr line would tear it."""


def observe(room: ControlRoom | None, observation: Observation) -> None:
    if room is None:
        return
    try:
        room.observe(observation)
    except Exception:  # the control room is advisory; a lost observation never fails a run
        return


def emit(room: ControlRoom | None, kind: EventKind, pipeline: str, run_id: str, **fields: Any) -> None:
    if room is None:
        return
    try:
        room.emit(RunEvent(kind=kind, pipeline=pipeline, run_id=run_id, at=time.time(), source="local", **fields))
    except Exception:  # same rule as observe
        return


def outcome_target(value: Any) -> SizingTarget:
    return value if isinstance(value, SizingTarget) else SizingTarget(str(value))


__all__ = ["Outcome", "emit", "observe", "outcome_target", "size"]
