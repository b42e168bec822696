"""The shape every long-running hand-off shares (SageMaker training, Glue runs, Athena queries): phases and polling.

Like flytekit's connectors, each backend keeps one complete table from its provider's states to
:class:`Phase` and drives its job through :func:`poll`, which knows nothing about AWS: it calls a
``describe`` function with growing pauses and reports every change of state. That split keeps
the loop testable without a provider, and the provider calls testable against moto.
"""

from __future__ import annotations

import contextlib
import enum
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Phase(enum.StrEnum):
    """Where a handed-off job stands, whatever the provider."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED, Phase.TIMEOUT)


def phase_of(table: Mapping[str, Phase], state: str, provider: str) -> Phase:
    """Look a provider state up; a state the table does not know counts as still running (a new
    provider state must never fail a healthy job) and is named in the log by the caller."""
    return table.get(state, Phase.RUNNING)


@dataclass(frozen=True)
class Backoff:
    """Pauses between polls: ``initial`` seconds, times ``factor`` each time, at most ``maximum``."""

    initial: float = 5.0
    factor: float = 1.5
    maximum: float = 60.0

    def delays(self) -> Callable[[], float]:
        current = [self.initial]

        def next_delay() -> float:
            delay = current[0]
            current[0] = min(self.maximum, current[0] * self.factor)
            return delay

        return next_delay


#: The default pause schedule; tests shorten it.
DEFAULT_BACKOFF = Backoff()


def poll(
    describe: Callable[[], T],
    phase: Callable[[T], Phase],
    *,
    on_update: Callable[[T], None] = lambda _: None,
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``describe`` until ``phase`` of its answer is terminal; return that last answer.

    ``on_update`` sees every answer (to stream status transitions and log lines).
    """
    next_delay = (backoff or DEFAULT_BACKOFF).delays()
    while True:
        answer = describe()
        on_update(answer)
        if phase(answer).terminal:
            return answer
        sleep(next_delay())


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`KeyboardInterrupt` while waiting on a provider's job.

    Argo stops a pod with SIGTERM; without this the pod would die and leave its SageMaker or Glue
    job running (and billing). Callers catch the interrupt, stop the job, and re-raise. Outside
    the main thread (where signals can not be handled) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
