"""``python -m steps size MODULE:PIPELINE TASK --run-id R ...``: the sizing node before an auto-sized task.

In Argo, a ``sizing="auto"`` task is preceded by this small pod. It builds a
:class:`~steps.core.contract.SizingRequest` from the task's declaration (target, declared resources,
timeout, ``bytes_per_row``) and the sizes of its inputs, asks the control room, prints the reason
(it shows in the Argo UI's logs) and writes the answer as output-parameter files in
``--outputs-dir``:

- ``decision``: the :class:`~steps.core.contract.SizingDecision` JSON (passed to the task's ``--sizing``);
- ``pod-spec-patch``: JSON for the task's ``podSpecPatch`` (requests and memory limit of ``main``);
- ``instance-type`` and ``instance-count``: for SageMaker/Glue arguments;
- ``cpu`` and ``memory``: the pod quantities, empty when not a pod.

It always exits 0: when the control room is down, or even when the pipeline cannot be loaded,
the files carry the declared resources (or nothing) and the task itself runs, or fails with its
own error. The control room never fails a pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from steps.core.contract import (
    ArtifactRef,
    EventKind,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
    artifact_totals,
)
from steps.core.quantities import parse_quantity


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="MODULE:PIPELINE")
    parser.add_argument("task")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--attempt", type=int, default=1)
    parser.add_argument("--input", action="append", default=[], help="TASK.OUTPUT=<reference JSON>")
    parser.add_argument("--previous-outcome", default="", help="how the previous attempt ended (e.g. oom)")
    parser.add_argument("--previous-instance-type", default="", help="the size the previous attempt ran on")
    parser.add_argument("--previous-instance-count", type=int, default=0, help="its instance/worker count")
    parser.add_argument("--outputs-dir", required=True, help="write Argo output parameter files here")
    parser.add_argument(
        "--run-date", default="", help="the run's run_date parameter: the control room page's date axis"
    )


def _log(message: str) -> None:
    print(f"[headrace] {message}", file=sys.stderr, flush=True)


def build_request(
    pipeline: Any,
    task_name: str,
    run_id: str,
    attempt: int,
    inputs: dict[tuple[str, str], ArtifactRef],
    previous_outcome: str | None = None,
    previous_instance_type: str | None = None,
    previous_instance_count: int | None = None,
    run_date: str = "",
) -> SizingRequest:
    """The request for ``task_name`` of ``pipeline``: its declaration plus the summed input sizes."""
    task = pipeline.task(task_name)
    resources = task.resources.to_dict() if hasattr(task.resources, "to_dict") else dict(task.resources or {})
    input_bytes, input_rows = artifact_totals(inputs.values())
    return SizingRequest(
        pipeline=str(pipeline.name),
        task=str(task.name),
        run_id=run_id,
        target=SizingTarget(str(getattr(task, "target", SizingTarget.POD))),
        input_bytes=input_bytes,
        input_rows=input_rows,
        attempt=attempt,
        declared=resources,
        deadline_seconds=getattr(task, "timeout_seconds", None),
        bytes_per_row=getattr(task, "bytes_per_row", None),
        previous_outcome=previous_outcome or None,
        previous_instance_type=previous_instance_type or None,
        previous_instance_count=previous_instance_count or None,
        retries_left=_retries_left(task, attempt),
        run_date=_day(run_date, str(getattr(pipeline, "timezone", "UTC"))),
    )


def _day(raw: str, timezone: str) -> str:
    """The run's day as the task itself reads it (``YYYY-MM-DD``, Argo's ``scheduledTime``, or
    today when empty); empty when unreadable, since sizing never fails (the task reports it)."""
    from steps.core.errors import HeadraceError
    from steps.runtime.task import resolve_run_date

    try:
        return resolve_run_date(raw, timezone).isoformat()
    except (HeadraceError, ValueError, LookupError):
        return ""


def _retries_left(task: Any, attempt: int) -> int | None:
    """Attempts the task has after attempt ``attempt`` (1-based) under its retry limit; None when
    unknown, or when the attempt is past the limit (the retries come from elsewhere)."""
    limit = getattr(getattr(task, "retry", None), "limit", None)
    if not isinstance(limit, int) or attempt - 1 > limit:
        return None
    return limit - (attempt - 1)


def pod_spec_patch(decision: SizingDecision, declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``podSpecPatch`` for the task's ``main`` container: requests, and a memory limit equal to
    the request (a predictable OOM beats a noisy neighbour); no CPU limit (throttling hurts more).
    A fallback to the declared resources keeps their own ``memory_limit``/``cpu_limit``.

    Argo merges the patch into the template, which keeps a declared ``cpu_limit``; a chosen CPU
    above it is set as the limit too, since Kubernetes refuses a request over its limit."""
    if decision.target != SizingTarget.POD or not (decision.cpu or decision.memory):
        return {}
    own = (declared or {}) if decision.source == "declared" else {}
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if decision.cpu:
        requests["cpu"] = decision.cpu
    if own.get("cpu_limit"):
        limits["cpu"] = str(own["cpu_limit"])
    template_limit = (declared or {}).get("cpu_limit")
    if decision.cpu and template_limit and parse_quantity(decision.cpu) > parse_quantity(str(template_limit)):
        limits["cpu"] = decision.cpu
    if decision.memory:
        requests["memory"] = decision.memory
        limits["memory"] = str(own.get("memory_limit") or decision.memory)
    resources: dict[str, Any] = {"requests": requests}
    if limits:
        resources["limits"] = limits
    return {"containers": [{"name": "main", "resources": resources}]}


def write_files(directory: Path, decision: SizingDecision | None, declared: dict[str, Any] | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "decision": json.dumps(decision.to_dict(), sort_keys=True) if decision else "",
        "pod-spec-patch": json.dumps(pod_spec_patch(decision, declared) if decision else {}, sort_keys=True),
        "instance-type": decision.instance_type if decision else "",
        "instance-count": str(decision.instance_count if decision else 1),
        "cpu": (decision.cpu or "") if decision else "",
        "memory": (decision.memory or "") if decision else "",
    }
    for name, content in files.items():
        (directory / name).write_text(content)


def main(args: argparse.Namespace) -> int:
    outputs_dir = Path(args.outputs_dir)
    try:
        from steps.core.settings import load_settings
        from steps.runtime.client import declared_decision, http_room, size_with_fallback
        from steps.runtime.loader import load_object
        from steps.runtime.task import parse_inputs

        pipeline = load_object(args.spec)
        request = build_request(
            pipeline,
            args.task,
            args.run_id,
            args.attempt,
            parse_inputs(args.input),
            args.previous_outcome,
            args.previous_instance_type,
            args.previous_instance_count,
            args.run_date,
        )
    except Exception as error:  # the task itself will report a broken pipeline; sizing never fails
        _log(f"sizing {args.task}: cannot build the request ({error}); the task runs with its declared resources")
        write_files(outputs_dir, None)
        return 0
    try:
        room = http_room(load_settings())
    except Exception as error:
        decision = declared_decision(request, f"control room not configured correctly ({error})")
        _log(f"sizing {request.pipeline}/{request.task}: {decision.reason}")
        write_files(outputs_dir, decision, request.declared)
        return 0
    decision = size_with_fallback(room, request, _log)
    write_files(outputs_dir, decision, request.declared)
    if decision.source != "declared" and room is not None:
        try:
            room.emit(
                RunEvent(
                    kind=EventKind.SIZING_DECIDED,
                    pipeline=request.pipeline,
                    run_id=request.run_id,
                    task=request.task,
                    attempt=request.attempt,
                    at=time.time(),
                    reason=decision.reason,
                    sizing=decision.to_dict(),
                    source="entrypoint",
                )
            )
        except Exception as error:
            _log(f"could not report the sizing event ({error})")
    return 0
