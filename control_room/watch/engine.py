"""The watcher's engine (pure, no I/O): Argo Workflows and their pods → run events.

The watcher is three modules, as kopf separates its engine from the Kubernetes I/O:

- **the engine** (this module): :func:`workflow_transitions` and :func:`pod_transitions` turn
  an object's previous and current state into the :class:`~steps.core.contract.RunEvent` s the change
  means; :func:`never_started` flags a workflow stuck before its first step. :class:`WatchEngine`
  keeps the last state of every object and the keys already reported, so each transition is
  reported once, even when a relist after ``410 Gone`` replays objects already seen.
- **the I/O** (:mod:`control_room.watch.kube`, official ``kubernetes`` client): list, then watch from the list's
  ``resourceVersion``; a dropped watch resumes from the last ``resourceVersion`` seen; ``410
  Gone`` (that version was compacted away) relists and diffs against what the engine knows;
- **the recording** (:mod:`control_room.watch.record`): each event stored, then notified.

What the watcher adds over what steps report themselves: pods killed by the OOM killer, images that
cannot be pulled (``ImagePullBackOff``/``ErrImagePull``), evicted pods, workflows that never
started, and the run's own phase changes (so a run is closed even if its pods never ran).
In the cluster it runs in the control room Deployment with a Role allowing only get/list/watch on
``workflows`` (argoproj.io) and ``pods``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from control_room.notifications.slack import argo_url
from steps.core.contract import EventKind, Observation, Outcome, RunEvent, SizingTarget
from steps.core.naming import (
    CRON_LABEL,
    EXIT_HANDLER_NODE,
    NODE_NAME_ANNOTATION,
    PIPELINE_LABEL,
    SIZING_NODE_PREFIX,
    TASK_LABEL,
    TRIGGER_LABEL,
    WORKFLOW_LABEL,
    task_and_attempt,
)

log = logging.getLogger("headrace.watch")


TERMINAL = frozenset({"Succeeded", "Failed", "Error"})
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})
Obj = Mapping[str, Any]


# --------------------------------------------------------------------------- engine (pure)


def parse_time(value: object) -> float | None:
    """Kubernetes RFC 3339 timestamps (``2026-01-02T03:04:05Z``) as unix seconds."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def metadata_of(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def workflow_pipeline(workflow: Obj) -> str:
    """The pipeline a workflow runs: its ``headrace.dev/pipeline`` label, else what Argo knows."""
    meta = metadata_of(workflow)
    labels = meta.get("labels") or {}
    template_ref = ((workflow.get("spec") or {}).get("workflowTemplateRef") or {}).get("name")
    return str(
        labels.get(PIPELINE_LABEL) or labels.get(CRON_LABEL) or template_ref or meta.get("generateName", "").rstrip("-")
    ) or str(meta.get("name", ""))


def _duration(status: Mapping[str, Any]) -> float | None:
    start, end = parse_time(status.get("startedAt")), parse_time(status.get("finishedAt"))
    return max(0.0, end - start) if start is not None and end is not None else None


def _is_infrastructure(task: str) -> bool:
    return task == EXIT_HANDLER_NODE or task.startswith(SIZING_NODE_PREFIX) or task.endswith(".onExit")


def _output_sizes(node: Mapping[str, Any]) -> tuple[int | None, int | None]:
    params = ((node.get("outputs") or {}).get("parameters")) or []
    total_bytes = total_rows = None
    for param in params:
        name, value = str(param.get("name", "")), param.get("value")
        try:
            number = int(str(value))
        except (TypeError, ValueError):
            continue
        if name.endswith("-bytes"):
            total_bytes = (total_bytes or 0) + number
        elif name.endswith("-rows"):
            total_rows = (total_rows or 0) + number
    return total_bytes, total_rows


def _failed_node(status: Mapping[str, Any]) -> tuple[str | None, str]:
    """The step that failed the workflow: the last failed attempt (earlier ones were retried)."""
    failed = [
        n
        for n in (status.get("nodes") or {}).values()
        if n.get("type") == "Pod" and n.get("phase") in ("Failed", "Error")
    ]
    failed.sort(key=lambda n: parse_time(n.get("finishedAt")) or 0.0, reverse=True)
    for node in failed:
        task, _ = task_and_attempt(str(node.get("displayName", "")))
        if not _is_infrastructure(task):
            return task, str(node.get("message") or "")
    return None, ""


def workflow_transitions(old: Obj | None, new: Obj, *, ui_url: str = "", namespace: str = "") -> list[RunEvent]:
    """What changed between two states of one Argo Workflow, as run and task events.

    ``old`` is ``None`` for a workflow seen for the first time. Pure: the same pair always gives
    the same events, and ``(x, x)`` gives none.
    """
    meta = metadata_of(new)
    run_id = str(meta.get("name", ""))
    pipeline = workflow_pipeline(new)
    url = argo_url(ui_url, namespace or str(meta.get("namespace", "")), run_id)
    old_status, status = _status(old), _status(new)
    old_phase, phase = str(old_status.get("phase") or ""), str(status.get("phase") or "")
    events: list[RunEvent] = []

    def event(kind: EventKind, **fields: Any) -> RunEvent:
        return RunEvent(kind=kind, pipeline=pipeline, run_id=run_id, url=url, source="watcher", **fields)

    if phase != old_phase and phase == "Running" and old_phase in ("", "Pending"):
        trigger = str((meta.get("labels") or {}).get(TRIGGER_LABEL) or "")
        started_by = f"started by trigger {trigger} (Argo Events)" if trigger else ""
        events.append(event(EventKind.RUN_STARTED, at=parse_time(status.get("startedAt")) or 0.0, reason=started_by))
    events.extend(_node_transitions(old_status, status, event))
    if phase != old_phase and phase in TERMINAL:
        at = parse_time(status.get("finishedAt")) or 0.0
        duration = _duration(status)
        message = str(status.get("message") or "")
        shutdown = (new.get("spec") or {}).get("shutdown")
        if phase == "Succeeded":
            events.append(event(EventKind.RUN_SUCCEEDED, at=at, duration_seconds=duration))
        elif shutdown or message.startswith("Stopped with strategy"):
            events.append(event(EventKind.RUN_CANCELLED, at=at, duration_seconds=duration, reason=message))
        else:
            task, task_message = _failed_node(status)
            events.append(
                event(
                    EventKind.RUN_FAILED,
                    task=task,
                    at=at,
                    duration_seconds=duration,
                    reason=task_message or message or f"workflow {phase.lower()}",
                )
            )
    return events


def _node_transitions(
    old_status: Mapping[str, Any], status: Mapping[str, Any], event: Callable[..., RunEvent]
) -> list[RunEvent]:
    old_nodes: Mapping[str, Any] = old_status.get("nodes") or {}
    nodes: Mapping[str, Any] = status.get("nodes") or {}
    events: list[RunEvent] = []
    ordered = sorted(nodes.items(), key=lambda item: (parse_time(item[1].get("startedAt")) or 0.0, item[0]))
    for node_id, node in ordered:
        if node.get("type") != "Pod":
            continue
        display = str(node.get("displayName", ""))
        task, attempt = task_and_attempt(display, str(node.get("name") or ""))
        if _is_infrastructure(task):
            continue
        phase = str(node.get("phase") or "")
        before = str((old_nodes.get(node_id) or {}).get("phase") or "")
        if phase == before:
            continue
        at = parse_time(node.get("finishedAt")) or parse_time(node.get("startedAt")) or 0.0
        if phase == "Running" and before in ("", "Pending"):
            events.append(event(EventKind.TASK_STARTED, task=task, attempt=attempt, at=at))
        elif phase == "Succeeded":
            output_bytes, output_rows = _output_sizes(node)
            events.append(
                event(
                    EventKind.TASK_SUCCEEDED,
                    task=task,
                    attempt=attempt,
                    at=at,
                    duration_seconds=_duration(node),
                    output_bytes=output_bytes,
                    output_rows=output_rows,
                )
            )
        elif phase in ("Failed", "Error"):
            reason = str(node.get("message") or phase.lower())
            parent = _retry_parent(nodes, node_id) or _retry_parent(nodes, str(node.get("boundaryID") or ""))
            if parent is not None and str(parent.get("phase") or "") not in TERMINAL:
                events.append(event(EventKind.TASK_RETRYING, task=task, attempt=attempt + 1, at=at, reason=reason))
            else:
                events.append(
                    event(
                        EventKind.TASK_FAILED,
                        task=task,
                        attempt=attempt,
                        at=at,
                        duration_seconds=_duration(node),
                        reason=reason,
                    )
                )
    return events


def _retry_parent(nodes: Mapping[str, Any], node_id: str) -> Mapping[str, Any] | None:
    """The Retry node retrying ``node_id`` (a pod, or the nested DAG a sized task runs in)."""
    if not node_id:
        return None
    for candidate in nodes.values():
        if candidate.get("type") == "Retry" and node_id in (candidate.get("children") or []):
            return dict(candidate)
    return None


def _container_problem(status: Mapping[str, Any]) -> str:
    """OOMKilled or an image pull failure in any container status, as a one-line reason."""
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        for state_key in ("state", "lastState"):
            state = container.get(state_key) or {}
            terminated = state.get("terminated") or {}
            if terminated.get("reason") == "OOMKilled":
                return f"OOMKilled (exit code {terminated.get('exitCode', 137)})"
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_PULL_REASONS:
            message = str(waiting.get("message") or "").strip()
            return f"{waiting['reason']}: {message}" if message else str(waiting["reason"])
    return ""


def pod_problem(pod: Obj | None) -> str:
    """Why a pod failed in a way its step cannot report: OOMKilled, image pull, eviction; else ``""``."""
    if pod is None:
        return ""
    status = _status(pod)
    if status.get("reason") == "Evicted":
        message = str(status.get("message") or "").strip()
        return f"Evicted: {message}" if message else "Evicted"
    return _container_problem(status)


def pod_task(pod: Obj) -> tuple[str, str, int]:
    """The (run id, task, attempt) a workflow pod runs, from Argo's labels and node-name annotation."""
    meta = metadata_of(pod)
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    run_id = str(labels.get(WORKFLOW_LABEL) or "")
    node_name = str(annotations.get(NODE_NAME_ANNOTATION) or "")
    display = node_name.split(".", 1)[1] if run_id and node_name.startswith(run_id + ".") else node_name
    task, attempt = task_and_attempt(display, display) if display else ("", 1)
    return run_id, str(labels.get(TASK_LABEL) or task), attempt


def _main_container(pod: Obj) -> Mapping[str, Any]:
    containers = ((pod.get("spec") or {}).get("containers")) or []
    for item in containers:
        if item.get("name") == "main":
            return dict(item)
    return dict(containers[0]) if containers else {}


def _terminated(pod: Obj) -> Mapping[str, Any]:
    for item in _status(pod).get("containerStatuses") or []:
        if item.get("name") == "main":
            for state_key in ("state", "lastState"):
                terminated = (item.get(state_key) or {}).get("terminated")
                if terminated:
                    return dict(terminated)
    return {}


def oom_observation(pod: Obj, *, pipeline: str = "") -> Observation | None:
    """The control room's record of a headrace task pod the OOM killer stopped, else None.

    An OOM-killed process cannot report itself, and on Argo the sizing node of the retry is not
    told how the last attempt ended: this observation (the pod's memory limit as the size that
    was too small, outcome ``oom``) is what makes the policy size the retry one step up and
    raise the task's memory floor. Sizing nodes and the exit handler are not tasks.
    """
    if not pod_problem(pod).startswith("OOMKilled"):
        return None
    run_id, task, attempt = pod_task(pod)
    labels = metadata_of(pod).get("labels") or {}
    pipeline = str(labels.get(PIPELINE_LABEL) or pipeline)
    if not run_id or not task or not pipeline or _is_infrastructure(task):
        return None
    resources = _main_container(pod).get("resources") or {}
    limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
    memory = limits.get("memory") or requests.get("memory")
    cpu = requests.get("cpu") or limits.get("cpu")
    terminated = _terminated(pod)
    start, end = parse_time(terminated.get("startedAt")), parse_time(terminated.get("finishedAt"))
    return Observation(
        pipeline=pipeline,
        task=task,
        run_id=run_id,
        attempt=attempt,
        outcome=Outcome.OOM,
        target=SizingTarget.POD,
        cpu=str(cpu) if cpu else None,
        memory=str(memory) if memory else None,
        duration_seconds=max(0.0, end - start) if start is not None and end is not None else 0.0,
        reason=f"{pod_problem(pod)} in pod {metadata_of(pod).get('name', '')}",
    )


def pod_transitions(
    old: Obj | None, new: Obj, *, pipeline: str = "", ui_url: str = "", namespace: str = ""
) -> list[RunEvent]:
    """A task failure for a pod that just got OOMKilled, stuck pulling its image or evicted."""
    problem = pod_problem(new)
    if not problem or pod_problem(old) == problem:
        return []
    run_id, task, attempt = pod_task(new)
    if not run_id:
        return []  # not an Argo workflow pod
    labels = metadata_of(new).get("labels") or {}
    status = _status(new)
    at = parse_time(status.get("startTime")) or 0.0
    return [
        RunEvent(
            kind=EventKind.TASK_FAILED,
            pipeline=str(labels.get(PIPELINE_LABEL) or pipeline or run_id),
            run_id=run_id,
            task=task or None,
            attempt=attempt,
            at=at,
            reason=problem,
            url=argo_url(ui_url, namespace or str(metadata_of(new).get("namespace", "")), run_id),
            source="watcher",
        )
    ]


def never_started(workflow: Obj, now: float, threshold_seconds: float) -> RunEvent | None:
    """A run failure for a workflow still Pending (or without phase) ``threshold_seconds`` after creation."""
    phase = str(_status(workflow).get("phase") or "")
    if phase not in ("", "Pending"):
        return None
    created = parse_time(metadata_of(workflow).get("creationTimestamp"))
    if created is None or now - created < threshold_seconds:
        return None
    message = str(_status(workflow).get("message") or "").strip()
    waited = int(now - created)
    reason = f"never started: still {phase or 'not scheduled'} after {waited}s"
    return RunEvent(
        kind=EventKind.RUN_FAILED,
        pipeline=workflow_pipeline(workflow),
        run_id=str(metadata_of(workflow).get("name", "")),
        at=now,
        reason=f"{reason} ({message})" if message else reason,
        source="watcher",
    )


def event_key(event: RunEvent) -> tuple[str, str, str, str, int]:
    return (event.pipeline, event.run_id, event.kind.value, event.task or "", event.attempt or 0)


class WatchEngine:
    """The watcher's memory: last state per object and what was reported. No I/O; thread-safe."""

    def __init__(self, *, ui_url: str = "", namespace: str = "", pending_seconds: float = 600.0) -> None:
        self.ui_url = ui_url
        self.namespace = namespace
        self.pending_seconds = pending_seconds
        self.workflows: dict[str, Obj] = {}
        self.pods: dict[str, Obj] = {}
        self.reported: set[tuple[str, str, str, str, int]] = set()
        self._lock = threading.Lock()

    def _fresh(self, events: list[RunEvent]) -> list[RunEvent]:
        fresh = []
        for event in events:
            key = event_key(event)
            if key not in self.reported:
                self.reported.add(key)
                fresh.append(event)
        return fresh

    def seed(self, kind: str, obj: Obj) -> None:
        """Remember an object from the first list without reporting its history."""
        with self._lock:
            (self.workflows if kind == "workflow" else self.pods)[str(metadata_of(obj).get("name"))] = obj

    def apply(self, kind: str, event_type: str, obj: Obj) -> list[RunEvent]:
        """The events one watch event (or relisted object) means; ``DELETED`` forgets the object."""
        return self.apply_all(kind, event_type, obj)[0]

    def apply_all(self, kind: str, event_type: str, obj: Obj) -> tuple[list[RunEvent], list[Observation]]:
        """:meth:`apply`, plus the OOM observation of a pod whose OOM kill is reported now."""
        events = self._apply(kind, event_type, obj)
        if kind != "pod" or not any(e.reason.startswith("OOMKilled") for e in events):
            return events, []
        found = oom_observation(obj, pipeline=events[0].pipeline)
        return events, [found] if found is not None else []

    def _apply(self, kind: str, event_type: str, obj: Obj) -> list[RunEvent]:
        name = str(metadata_of(obj).get("name"))
        with self._lock:
            cache = self.workflows if kind == "workflow" else self.pods
            if event_type == "DELETED":
                cache.pop(name, None)
                if kind == "workflow":  # its run is over: forget what was reported, keep memory flat
                    self.reported = {key for key in self.reported if key[1] != name}
                return []
            old = cache.get(name)
            cache[name] = obj
            if kind == "workflow":
                events = workflow_transitions(old, obj, ui_url=self.ui_url, namespace=self.namespace)
            else:
                run_id = str((metadata_of(obj).get("labels") or {}).get(WORKFLOW_LABEL) or "")
                pipeline = workflow_pipeline(self.workflows[run_id]) if run_id in self.workflows else ""
                events = pod_transitions(old, obj, pipeline=pipeline, ui_url=self.ui_url, namespace=self.namespace)
            return self._fresh(events)

    def forget_missing(self, kind: str, names: set[str]) -> None:
        """After a relist: objects no longer listed were deleted while the watch was down."""
        with self._lock:
            cache = self.workflows if kind == "workflow" else self.pods
            for name in set(cache) - names:
                cache.pop(name, None)

    def check_pending(self, now: float) -> list[RunEvent]:
        """Run failures for workflows that have waited too long to start (reported once each)."""
        with self._lock:
            found = [never_started(wf, now, self.pending_seconds) for wf in self.workflows.values()]
            return self._fresh([e for e in found if e is not None])
