"""What a task attempt in a pod tells the control room: its events and its observation.

The local runner reports for its tasks itself (it also sees kills and timeouts); in Argo the
in-pod entrypoint does it (``python -m steps run ... --report``), over HTTP, so the control room
learns sizes from every run and Slack hears of task starts, successes and failures. What a pod
cannot report itself (an OOM kill, an eviction) the control room's watcher catches.

Reporting never fails a task: without a control room URL it does nothing, and an unreachable
service is logged, not raised (:class:`steps.runtime.client.HttpControlRoom` retries, then logs).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from steps.core.contract import (
    ArtifactRef,
    ControlRoom,
    EventKind,
    Observation,
    Outcome,
    RunEvent,
    SizingDecision,
    SizingTarget,
    artifact_totals,
)
from steps.core.settings import Settings


def pod_control_room(settings: Settings) -> ControlRoom | None:
    """The control room service a pod reports to, or None when none is configured."""
    if not settings.control_room_url:
        return None
    from steps.runtime.client import HttpControlRoom, read_token

    return HttpControlRoom(settings.control_room_url, read_token(settings))


class AttemptReporter:
    """Reports one attempt: ``started()`` before the step runs, ``finished(...)`` after."""

    def __init__(
        self,
        room: ControlRoom,
        *,
        pipeline: str,
        task: str,
        run_id: str,
        attempt: int,
        target: SizingTarget,
        declared: Mapping[str, Any],
        sizing: SizingDecision | None,
        inputs: Mapping[Any, ArtifactRef],
    ) -> None:
        self.room = room
        self.pipeline, self.task, self.run_id, self.attempt = pipeline, task, run_id, attempt
        self.target, self.declared, self.sizing = target, declared, sizing
        self.input_bytes, self.input_rows = artifact_totals(inputs.values())
        self.begun = time.monotonic()

    def _event(self, kind: EventKind, **fields: Any) -> RunEvent:
        return RunEvent(
            kind=kind,
            pipeline=self.pipeline,
            run_id=self.run_id,
            task=self.task,
            attempt=self.attempt,
            at=time.time(),
            sizing=self.sizing.to_dict() if self.sizing else None,
            source="entrypoint",
            **fields,
        )

    def started(self) -> None:
        self.room.emit(self._event(EventKind.TASK_STARTED))

    def finished(
        self,
        outcome: Outcome,
        *,
        outputs: Mapping[str, ArtifactRef] | None = None,
        peak_memory_bytes: int | None = None,
        reason: str = "",
    ) -> None:
        duration = time.monotonic() - self.begun
        output_bytes, output_rows = artifact_totals((outputs or {}).values())
        sizing = self.sizing
        self.room.observe(
            Observation(
                pipeline=self.pipeline,
                task=self.task,
                run_id=self.run_id,
                attempt=self.attempt,
                outcome=outcome,
                input_bytes=self.input_bytes,
                input_rows=self.input_rows,
                output_bytes=output_bytes,
                output_rows=output_rows,
                target=self.target,
                instance_type=sizing.instance_type if sizing else self.declared.get("instance_type"),
                instance_count=sizing.instance_count if sizing else int(self.declared.get("instance_count") or 1),
                cpu=sizing.cpu if sizing else self.declared.get("cpu"),
                memory=sizing.memory if sizing else self.declared.get("memory"),
                duration_seconds=duration,
                peak_memory_bytes=peak_memory_bytes,
                reason=reason,
            )
        )
        succeeded = outcome == Outcome.SUCCEEDED
        self.room.emit(
            self._event(
                EventKind.TASK_SUCCEEDED if succeeded else EventKind.TASK_FAILED,
                duration_seconds=duration,
                reason=reason,
                output_bytes=output_bytes if succeeded else None,
                output_rows=output_rows if succeeded else None,
            )
        )
