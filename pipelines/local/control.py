"""The runner's side of the control room: sizing requests, observations, run events.

Everything here is best effort: the control room helps a run, it must never fail one. A sizing
call that fails falls back to the task's declared resources (and says so in the decision's
reason); a failed ``observe`` or ``emit`` is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from steps.contract import (
    ArtifactRef,
    ControlRoom,
    EventKind,
    Observation,
    Outcome,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
)


def input_totals(refs: Iterable[ArtifactRef]) -> tuple[int, int]:
    """Bytes and rows over a task's inputs, each stored artifact counted once."""
    seen: dict[str, ArtifactRef] = {}
    for ref in refs:
        seen.setdefault(ref.uri, ref)
    return sum(r.bytes for r in seen.values()), sum(r.rows or 0 for r in seen.values())


def declared_decision(request: SizingRequest, why: str) -> SizingDecision:
    """The task's own declared resources as a decision, when the control room cannot answer."""
    declared = request.declared
    return SizingDecision(
        target=request.target,
        instance_type=str(declared.get("instance_type") or ""),
        instance_count=int(declared.get("instance_count") or 1),
        cpu=declared.get("cpu"),
        memory=declared.get("memory_limit") or declared.get("memory"),
        reason=f"control room unavailable ({why}); using declared resources",
        source="declared",
    )


def size(room: ControlRoom, request: SizingRequest) -> SizingDecision:
    """Ask the control room; never raises. Uses H5's ``size_with_fallback`` when it exists."""
    try:
        from control_room.client import size_with_fallback  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            return room.size(request)
        except Exception as error:
            return declared_decision(request, f"{type(error).__name__}: {error}")
    try:
        decision: SizingDecision = size_with_fallback(room, request, log_line=_quiet)
        return decision
    except Exception as error:
        return declared_decision(request, f"{type(error).__name__}: {error}")


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


__all__ = ["Outcome", "declared_decision", "emit", "input_totals", "observe", "outcome_target", "size"]
