"""What a local run did, task by task: the state the runner updates and the live view reads.

Its own module so the view and the listener read it without importing the scheduler.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipelines.local.attempt import Attempt
from steps.core.contract import ArtifactRef, SizingDecision


@dataclass
class TaskSummary:
    """One task's state in a run; the live view reads it while the run goes on."""

    name: str
    status: str = "pending"
    attempts: int = 0
    duration: float | None = None
    outputs: dict[str, ArtifactRef] = field(default_factory=dict)
    sizing: SizingDecision | None = None
    reason: str = ""
    log_path: str | None = None
    reused: bool = False
    log_tail: list[str] = field(default_factory=list)
    #: What the succeeded attempt kept with the run (``ctx.record``): a ``summary`` is shown at the end.
    records: dict[str, Any] = field(default_factory=dict)
    #: Set while an attempt runs (monotonic start, the live attempt for its progress).
    started_at: float | None = None
    attempt: Attempt | None = field(default=None, repr=False)
    tries_this_run: int = 0
    next_try_at: float = 0.0
    previous_outcome: str | None = None

    @property
    def output_bytes(self) -> int:
        return sum(ref.bytes for ref in self.outputs.values())

    @property
    def output_rows(self) -> int | None:
        rows = [ref.rows for ref in self.outputs.values() if ref.rows is not None]
        return sum(rows) if rows else None

    @property
    def elapsed(self) -> float | None:
        if self.status == "running" and self.started_at is not None:
            return time.monotonic() - self.started_at
        return self.duration


@dataclass
class RunSummary:
    """What a run did: returned by :func:`run_pipeline`, shown by the live view as it changes."""

    run_id: str
    pipeline: str
    status: str = "running"
    tasks: dict[str, TaskSummary] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    duration: float | None = None
    #: Where this run's outputs live: ``<artifact root>/<pipeline>/<run_id>/``.
    outputs_root: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed_tasks(self) -> list[TaskSummary]:
        return [t for t in self.tasks.values() if t.status == "failed"]
