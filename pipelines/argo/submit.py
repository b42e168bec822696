"""Runs on Argo: submit a compiled Workflow, read its status, list, stop, retry, resubmit, watch.

Every submitted Workflow carries ``headrace.dev/pipeline`` and ``headrace.dev/run-date`` labels,
so runs are found by label selector (``headrace list``) and a backfill never submits a day twice.
The controller's own ``workflows.argoproj.io/phase`` label lets the API filter by status.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import time
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.argo.client import Transport
from pipelines.graph import RUN_DATE, Pipeline
from steps.core.display import format_duration
from steps.core.errors import UserError
from steps.core.naming import PHASE_LABEL, PIPELINE_LABEL, RUN_DATE_LABEL, SCHEDULED_TIME_ANNOTATION, task_and_attempt
from steps.core.settings import Settings

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Error")
COMPLETED = ("Succeeded", "Failed", "Error")


@dataclass(frozen=True)
class TaskStatus:
    """One task of a run as Argo reports it (a DAG node that runs a pod)."""

    name: str
    phase: str
    started_at: str = ""
    finished_at: str = ""
    message: str = ""
    node_id: str = ""
    pod_name: str = ""
    #: From 1, as everywhere in headrace (:mod:`steps.core.naming` converts Argo's ``train(0)``).
    attempt: int = 1


@dataclass(frozen=True)
class RunStatus:
    """A submitted run: its name (the run id), pipeline, run date, phase and tasks."""

    name: str
    pipeline: str
    run_date: str
    phase: str
    started_at: str = ""
    finished_at: str = ""
    message: str = ""
    tasks: tuple[TaskStatus, ...] = field(default_factory=tuple)

    @property
    def done(self) -> bool:
        return self.phase in COMPLETED

    @property
    def duration(self) -> str:
        return elapsed(self.started_at, self.finished_at)


def _parse_time(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def elapsed(started: str, finished: str) -> str:
    """The time between two RFC 3339 times (until now when ``finished`` is empty), as headrace
    shows durations (:func:`steps.core.display.format_duration`)."""
    start = _parse_time(started)
    if start is None:
        return ""
    end = _parse_time(finished) or dt.datetime.now(dt.UTC)
    return format_duration(max(0.0, (end - start).total_seconds()))


def fnv32a(text: str) -> int:
    """FNV-1a 32-bit, the hash Argo uses in node ids and pod names."""
    value = 0x811C9DC5
    for byte in text.encode():
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def pod_name(workflow: str, node_name: str, template: str) -> str:
    """The pod of a node under Argo's v2 pod naming: ``<workflow>-<template>-<fnv32a(node name)>``."""
    prefix = f"{workflow}-{template}" if template else workflow
    if len(prefix) > 253 - 11:
        prefix = prefix[: 253 - 11]
    return f"{prefix}-{fnv32a(node_name)}"


#: Node types that stand for a task's own work (a pod, an HTTP sizing call) or its skipping.
TASK_NODE_TYPES = ("Pod", "HTTP", "Plugin", "Container", "Skipped")


def run_status(obj: Mapping[str, Any]) -> RunStatus:
    """A :class:`RunStatus` from a Workflow object; tasks in start order.

    A task with a retry strategy appears as one node per attempt (``train(0)``, ``train(1)``
    under a ``Retry`` node); each keeps the task's name and its attempt number.
    """
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = obj.get("status") or {}
    name = str(meta.get("name", ""))
    tasks: list[TaskStatus] = []
    for node_id, node in (status.get("nodes") or {}).items():
        if node.get("type") not in TASK_NODE_TYPES:
            continue
        template = str(node.get("templateName") or "")
        display = str(node.get("displayName") or node.get("name") or node_id)
        # a sized task retries as a nested DAG: its pod's full name is ``<run>.train(1).train``
        display, attempt = task_and_attempt(display, str(node.get("name") or ""))
        tasks.append(
            TaskStatus(
                name=display,
                phase=str(node.get("phase") or "Pending"),
                started_at=str(node.get("startedAt") or ""),
                finished_at=str(node.get("finishedAt") or ""),
                message=str(node.get("message") or ""),
                node_id=str(node.get("id") or node_id),
                pod_name=pod_name(name, str(node.get("name") or ""), template) if node.get("type") == "Pod" else "",
                attempt=attempt,
            )
        )
    tasks.sort(key=lambda t: (t.started_at or "~", t.name, t.attempt))
    started = {t.name for t in tasks}
    tasks += [TaskStatus(name=task, phase="Pending") for task in declared_tasks(obj) if task not in started]
    scheduled = str((meta.get("annotations") or {}).get(SCHEDULED_TIME_ANNOTATION) or "")
    return RunStatus(
        name=name,
        pipeline=str(labels.get(PIPELINE_LABEL, "")),
        run_date=str(labels.get(RUN_DATE_LABEL, "") or scheduled),
        phase=str(status.get("phase") or "Pending"),
        started_at=str(status.get("startedAt") or meta.get("creationTimestamp") or ""),
        finished_at=str(status.get("finishedAt") or ""),
        message=str(status.get("message") or ""),
        tasks=tuple(tasks),
    )


def declared_tasks(obj: Mapping[str, Any]) -> list[str]:
    """The DAG tasks of the workflow's entrypoint, in definition order (from the workflow's own
    spec, or the stored template spec of a run started from a WorkflowTemplate)."""
    status = obj.get("status") or {}
    for spec in (obj.get("spec") or {}, status.get("storedWorkflowTemplateSpec") or {}):
        entry = spec.get("entrypoint")
        for template in spec.get("templates") or []:
            if template.get("name") == entry and "dag" in template:
                return [str(task.get("name")) for task in template["dag"].get("tasks") or []]
    return []


def run_date_label(run_date: str) -> str:
    """A run date as a label value: ``2026-11-01``, or ``2026-11-01T0300`` for a time of day.

    Whatever the user passed, the result is a valid Kubernetes label value (at most 63 of
    ``[A-Za-z0-9-_.]``, alphanumeric at both ends): other characters become ``-``."""
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", run_date.replace(":", "").replace("+", "p"))
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", text[:63])


def today(timezone: str) -> str:
    """Today's date in the pipeline's time zone, the run date of a by-hand submission."""
    return dt.datetime.now(zoneinfo.ZoneInfo(timezone)).date().isoformat()


def prepare(workflow: Mapping[str, Any], *, params: Mapping[str, str], namespace: str) -> dict[str, Any]:
    """The compiled Workflow with parameter values set and headrace's labels added.

    ``params`` must hold ``run_date``; it becomes the ``headrace.dev/run-date`` label.
    """
    obj = copy.deepcopy(dict(workflow))
    spec = obj.setdefault("spec", {})
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = namespace
    pipeline = str((meta.get("labels") or {}).get(PIPELINE_LABEL) or meta.get("generateName", "").rstrip("-"))
    parameters = spec.setdefault("arguments", {}).setdefault("parameters", [])
    known = {p["name"]: p for p in parameters}
    for key, value in params.items():
        if key not in known:
            raise UserError(
                f"pipeline {pipeline}: unknown parameter {key!r}; parameters are {', '.join(sorted(known)) or 'none'}"
            )
        known[key]["value"] = value
    run_date = str(params.get(RUN_DATE) or known.get(RUN_DATE, {}).get("value") or "")
    labels = meta.setdefault("labels", {})
    labels[PIPELINE_LABEL] = pipeline
    if run_date:
        labels[RUN_DATE_LABEL] = run_date_label(run_date)
    return obj


def compile_workflow(pipeline: Pipeline, spec: str, settings: Settings) -> dict[str, Any]:
    """The pipeline compiled as a one-off Workflow (the compiler is imported lazily: it loads Hera)."""
    from pipelines.argo import compile_pipeline

    return compile_pipeline(pipeline, spec=spec, kind="workflow", settings=settings)


def submit(
    transport: Transport,
    pipeline: Pipeline,
    workflow: Mapping[str, Any],
    *,
    params: Mapping[str, str] | None = None,
) -> RunStatus:
    """Submit ``workflow`` (compiled from ``pipeline``) with ``params``; ``run_date`` defaults to
    today in the pipeline's time zone. Returns the created run."""
    values = pipeline.resolve_params(params)
    if not values.get(RUN_DATE):
        values[RUN_DATE] = today(pipeline.timezone)
    explicit = {k: v for k, v in values.items() if k in (params or {}) or k == RUN_DATE}
    created = transport.create(
        "workflows", prepare(workflow, params=explicit, namespace=transport.connection.namespace)
    )
    return run_status(created)


def get_run(transport: Transport, name: str) -> RunStatus:
    return run_status(transport.get("workflows", name))


def selector(*, pipeline: str | None = None, run_date: str | None = None, phases: tuple[str, ...] = ()) -> str:
    """A label selector over headrace's labels and the controller's phase label."""
    parts: list[str] = []
    parts.append(f"{PIPELINE_LABEL}={pipeline}" if pipeline else PIPELINE_LABEL)
    if run_date:
        parts.append(f"{RUN_DATE_LABEL}={run_date_label(run_date)}")
    if len(phases) == 1:
        parts.append(f"{PHASE_LABEL}={phases[0]}")
    elif phases:
        parts.append(f"{PHASE_LABEL} in ({','.join(phases)})")
    return ",".join(parts)


def phase_of(status: str) -> str:
    """``succeeded`` / ``Succeeded`` -> ``Succeeded``; an unknown status is one clear line."""
    for phase in PHASES:
        if phase.lower() == status.strip().lower():
            return phase
    raise UserError(f"status {status!r} is not an Argo phase; use one of {', '.join(p.lower() for p in PHASES)}")


def list_runs(transport: Transport, *, pipeline: str | None = None, status: str | None = None) -> list[RunStatus]:
    """headrace's runs, newest first, filtered on the server by label selector."""
    phases = (phase_of(status),) if status else ()
    runs = [run_status(obj) for obj in transport.list("workflows", selector(pipeline=pipeline, phases=phases))]
    return sorted(runs, key=lambda r: (r.started_at, r.name), reverse=True)


def list_runs_for(transport: Transport, pipeline: str, run_date: str, phases: tuple[str, ...]) -> list[str]:
    """Names of ``pipeline``'s runs for ``run_date`` in one of ``phases`` (backfill's duplicate check)."""
    found = transport.list("workflows", selector(pipeline=pipeline, run_date=run_date, phases=phases))
    return [str((obj.get("metadata") or {}).get("name", "")) for obj in found]


def scheduled_runs(transport: Transport, pipeline: str, phases: tuple[str, ...]) -> list[tuple[dt.datetime, str]]:
    """(scheduled time, name) of ``pipeline``'s runs started by its CronWorkflow, in ``phases``."""
    found: list[tuple[dt.datetime, str]] = []
    for obj in transport.list("workflows", selector(pipeline=pipeline, phases=phases)):
        meta = obj.get("metadata") or {}
        when = _parse_time(str((meta.get("annotations") or {}).get(SCHEDULED_TIME_ANNOTATION) or ""))
        if when is not None:
            found.append((when, str(meta.get("name", ""))))
    return found


def act(transport: Transport, name: str, action: str) -> RunStatus:
    """``stop``, ``retry`` or ``resubmit`` a run; returns the run acted on (a new one for resubmit)."""
    if action not in ("stop", "retry", "resubmit"):
        raise UserError(f"action {action!r}: use stop, retry or resubmit")
    return run_status(transport.workflow_action(name, action))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- watching


def task_table(run: RunStatus) -> Any:
    """The live task table: one row per task with its phase, duration and message."""
    from rich.table import Table

    colours = {"Succeeded": "green", "Failed": "red", "Error": "red", "Running": "cyan", "Pending": "dim"}
    finished = sum(1 for t in run.tasks if t.phase in COMPLETED)
    title = f"{run.name}  {run.pipeline} {run.run_date}  [{run.phase}] {run.duration}  {finished}/{len(run.tasks)} done"
    table = Table(title=title)
    for column in ("task", "phase", "duration", "message"):
        table.add_column(column)
    for task in run.tasks:
        colour = colours.get(task.phase, "white")
        table.add_row(
            f"{task.name} (attempt {task.attempt})" if task.attempt > 1 else task.name,
            f"[{colour}]{task.phase}[/]",
            elapsed(task.started_at, task.finished_at),
            task.message,
        )
    return table


def watch(
    transport: Transport,
    name: str,
    *,
    interval: float = 2.0,
    timeout: float | None = None,
    console: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunStatus:
    """Poll the run and redraw its task table until it completes (or ``timeout`` passes)."""
    from rich.live import Live

    deadline = None if timeout is None else time.monotonic() + timeout
    run = get_run(transport, name)
    with Live(task_table(run), console=console, refresh_per_second=4, transient=False) as live:
        while not run.done and (deadline is None or time.monotonic() < deadline):
            sleep(interval)
            run = get_run(transport, name)
            live.update(task_table(run))
    return run
