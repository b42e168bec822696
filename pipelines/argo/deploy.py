"""Schedules on Argo: deploy a pipeline's WorkflowTemplate and CronWorkflow, list, suspend, render.

``deploy`` is idempotent. Each object carries the SHA-256 of what headrace sent
(``headrace.dev/spec-sha256``); a second deploy with nothing changed finds the same digest (or the
same spec) and makes no update call at all, a changed one replaces the object in place with the
``resourceVersion`` it read, so a concurrent edit surfaces as a conflict instead of being lost.
The WorkflowTemplate goes first: the CronWorkflow refers to it by name.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipelines.argo.client import AlreadyExists, Kind, Transport
from pipelines.graph import Pipeline
from steps.core.errors import NotFoundError, UserError
from steps.core.naming import PIPELINE_LABEL
from steps.core.settings import Settings

DIGEST_ANNOTATION = "headrace.dev/spec-sha256"
Outcome = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True)
class Applied:
    """What ``deploy`` did to one object."""

    kind: Kind
    name: str
    outcome: Outcome


def digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of the parts headrace owns: labels, its annotations (minus the digest), spec."""
    meta = obj.get("metadata") or {}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != DIGEST_ANNOTATION}
    owned = {"labels": meta.get("labels") or {}, "annotations": annotations, "spec": obj.get("spec") or {}}
    return hashlib.sha256(json.dumps(owned, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def apply(transport: Transport, kind: Kind, desired: Mapping[str, Any]) -> Applied:
    """Create ``desired``, or update it in place when it differs from what the cluster holds."""
    obj = copy.deepcopy(dict(desired))
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = transport.connection.namespace
    wanted = digest(obj)
    meta.setdefault("annotations", {})[DIGEST_ANNOTATION] = wanted
    name = _name(obj)
    try:
        current = transport.get(kind, name)
    except NotFoundError:
        try:
            transport.create(kind, obj)
            return Applied(kind, name, "created")
        except AlreadyExists:  # created by someone else meanwhile: fall through to compare
            current = transport.get(kind, name)
    current_meta = current.get("metadata") or {}
    same_digest = (current_meta.get("annotations") or {}).get(DIGEST_ANNOTATION) == wanted
    if same_digest or (current.get("spec") == obj.get("spec") and current_meta.get("labels") == meta.get("labels")):
        return Applied(kind, name, "unchanged")
    meta["resourceVersion"] = current_meta.get("resourceVersion")
    transport.update(kind, name, obj)
    return Applied(kind, name, "updated")


def compile_objects(pipeline: Pipeline, spec: str, settings: Settings) -> list[tuple[Kind, dict[str, Any]]]:
    """The WorkflowTemplate, then the CronWorkflow when the pipeline has a schedule, then the
    Argo Events EventSource and Sensor when it has triggers (:mod:`pipelines.argo.events`)."""
    from pipelines.argo import compile_pipeline
    from pipelines.argo.events import event_objects

    template = compile_pipeline(pipeline, spec=spec, kind="template", settings=settings)
    objects: list[tuple[Kind, dict[str, Any]]] = [("workflowtemplates", template)]
    if pipeline.schedule is not None:
        objects.append(("cronworkflows", compile_pipeline(pipeline, spec=spec, kind="cron", settings=settings)))
    objects += event_objects(pipeline, settings)
    return objects


def deploy(transport: Transport, objects: list[tuple[Kind, dict[str, Any]]]) -> list[Applied]:
    """Apply each object in order (template before the cron that refers to it)."""
    return [apply(transport, kind, obj) for kind, obj in objects]


# ----------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class ScheduleInfo:
    """One deployed CronWorkflow as ``headrace schedules`` shows it."""

    name: str
    pipeline: str
    schedules: tuple[str, ...]
    timezone: str
    suspended: bool
    next_run: dt.datetime | None
    last_scheduled: str = ""


def next_run(schedules: tuple[str, ...], timezone: str, now: dt.datetime | None = None) -> dt.datetime | None:
    """The next time any of ``schedules`` fires, in ``timezone`` (croniter, as Argo evaluates it)."""
    from croniter import croniter

    try:
        tz = zoneinfo.ZoneInfo(timezone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    start = (now or dt.datetime.now(dt.UTC)).astimezone(tz)
    found: list[dt.datetime] = []
    for expression in schedules:
        text = expression.strip()
        if text.startswith("@every"):
            continue
        try:
            found.append(croniter(text, start).get_next(dt.datetime))
        except (ValueError, KeyError):
            continue
    return min(found) if found else None


def schedule_info(obj: Mapping[str, Any], now: dt.datetime | None = None) -> ScheduleInfo:
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    schedules = tuple(str(s) for s in spec.get("schedules") or ())
    timezone = str(spec.get("timezone") or "UTC")
    suspended = bool(spec.get("suspend"))
    return ScheduleInfo(
        name=str(meta.get("name", "")),
        pipeline=str((meta.get("labels") or {}).get(PIPELINE_LABEL, "")),
        schedules=schedules,
        timezone=timezone,
        suspended=suspended,
        next_run=None if suspended else next_run(schedules, timezone, now),
        last_scheduled=str((obj.get("status") or {}).get("lastScheduledTime") or ""),
    )


def list_schedules(transport: Transport, now: dt.datetime | None = None) -> list[ScheduleInfo]:
    """headrace's CronWorkflows in the namespace, soonest next run first (suspended last)."""
    infos = [schedule_info(obj, now) for obj in transport.list("cronworkflows", PIPELINE_LABEL)]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(infos, key=lambda i: (i.next_run or far, i.name))


def set_suspended(transport: Transport, name: str, suspended: bool) -> ScheduleInfo:
    return schedule_info(transport.cron_action(name, "suspend" if suspended else "resume"))


# ----------------------------------------------------------------------------- render


def render(objects: list[tuple[Kind, dict[str, Any]]], out_dir: Path, pipeline: str) -> Path:
    """Write the objects as one multi-document YAML file ``<out_dir>/<pipeline>.yaml``."""
    from pipelines.argo import to_yaml

    if not objects:
        raise UserError(f"pipeline {pipeline}: nothing to render")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{pipeline}.yaml"
    header = f"# Rendered by `headrace render` for pipeline {pipeline}; do not edit, render again.\n"
    path.write_text(header + "---\n".join(to_yaml(obj) for _, obj in objects), encoding="utf-8")
    return path
