"""The watcher: Argo Workflows and their pods in one namespace → run events (no kubewatch).

Two halves, as kopf separates its engine from the Kubernetes I/O:

- **the engine** (pure, no I/O): :func:`workflow_transitions` and :func:`pod_transitions` turn
  an object's previous and current state into the :class:`~steps.core.contract.RunEvent` s the change
  means; :func:`never_started` flags a workflow stuck before its first step. :class:`WatchEngine`
  keeps the last state of every object and the keys already reported, so each transition is
  reported once, even when a relist after ``410 Gone`` replays objects already seen.
- **the I/O** (:class:`Watcher`, official ``kubernetes`` client): list, then watch from the list's
  ``resourceVersion``; a dropped watch resumes from the last ``resourceVersion`` seen; ``410
  Gone`` (that version was compacted away) relists and diffs against what the engine knows.

What the watcher adds over what steps report themselves: pods killed by the OOM killer, images that
cannot be pulled (``ImagePullBackOff``/``ErrImagePull``), evicted pods, workflows that never
started, and the run's own phase changes (so a run is closed even if its pods never ran).
In the cluster it runs in the control room Deployment with a Role allowing only get/list/watch on
``workflows`` (argoproj.io) and ``pods``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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


GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"
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


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _status(obj: Obj | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def workflow_pipeline(workflow: Obj) -> str:
    """The pipeline a workflow runs: its ``headrace.dev/pipeline`` label, else what Argo knows."""
    meta = _meta(workflow)
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
    meta = _meta(new)
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
    meta = _meta(pod)
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
    labels = _meta(pod).get("labels") or {}
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
        reason=f"{pod_problem(pod)} in pod {_meta(pod).get('name', '')}",
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
    labels = _meta(new).get("labels") or {}
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
            url=argo_url(ui_url, namespace or str(_meta(new).get("namespace", "")), run_id),
            source="watcher",
        )
    ]


def never_started(workflow: Obj, now: float, threshold_seconds: float) -> RunEvent | None:
    """A run failure for a workflow still Pending (or without phase) ``threshold_seconds`` after creation."""
    phase = str(_status(workflow).get("phase") or "")
    if phase not in ("", "Pending"):
        return None
    created = parse_time(_meta(workflow).get("creationTimestamp"))
    if created is None or now - created < threshold_seconds:
        return None
    message = str(_status(workflow).get("message") or "").strip()
    waited = int(now - created)
    reason = f"never started: still {phase or 'not scheduled'} after {waited}s"
    return RunEvent(
        kind=EventKind.RUN_FAILED,
        pipeline=workflow_pipeline(workflow),
        run_id=str(_meta(workflow).get("name", "")),
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
            (self.workflows if kind == "workflow" else self.pods)[str(_meta(obj).get("name"))] = obj

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
        name = str(_meta(obj).get("name"))
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
                run_id = str((_meta(obj).get("labels") or {}).get(WORKFLOW_LABEL) or "")
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


# --------------------------------------------------------------------------- I/O (kubernetes)


class Watcher:
    """Watches workflows and pods in ``namespace`` and hands every new event to ``notifier``.

    ``api_client`` is a ``kubernetes.client.ApiClient``; without one the in-cluster configuration
    is used, else the local kubeconfig.
    """

    def __init__(
        self,
        notifier: Callable[[RunEvent], None],
        namespace: str,
        *,
        api_client: Any = None,
        ui_url: str = "",
        pending_seconds: float = 600.0,
        watch_timeout_seconds: int = 300,
        retry_delay: float = 1.0,
        observer: Callable[[Observation], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.observer = observer if observer is not None else getattr(notifier, "observe", None)
        self.namespace = namespace
        self.api_client = api_client if api_client is not None else _default_api_client()
        self.engine = WatchEngine(ui_url=ui_url, namespace=namespace, pending_seconds=pending_seconds)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.retry_delay = retry_delay
        self.stop_event = threading.Event()
        self.synced = {"workflow": threading.Event(), "pod": threading.Event()}
        self._threads: list[threading.Thread] = []
        self._responses: dict[str, Any] = {}

    # -- the two resources, through the official client
    def _list(self, kind: str) -> tuple[list[dict[str, Any]], str]:
        from kubernetes import client

        if kind == "workflow":
            raw = client.CustomObjectsApi(self.api_client).list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, _preload_content=False
            )
        else:
            raw = client.CoreV1Api(self.api_client).list_namespaced_pod(self.namespace, _preload_content=False)
        try:
            body = json.loads(raw.data)
        finally:
            raw.release_conn()
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion") or "")

    def _stream(self, kind: str, resource_version: str) -> Iterator[dict[str, Any]]:
        """One watch request from ``resource_version``: its events as dicts, until the server ends it.

        Raw lines rather than ``kubernetes.watch.Watch``'s models: one pod the client's models
        reject (a field they consider required) must not wedge the watch, and Watch turns an
        ``ERROR`` event into a ``KeyError`` when not deserializing.
        """
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from kubernetes.watch.watch import iter_resp_lines

        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "timeout_seconds": self.watch_timeout_seconds,
            "allow_watch_bookmarks": True,
            "_preload_content": False,
        }
        if kind == "workflow":
            api = client.CustomObjectsApi(self.api_client)
            response = api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **kwargs)
        else:
            response = client.CoreV1Api(self.api_client).list_namespaced_pod(self.namespace, **kwargs)
        self._responses[kind] = response
        try:
            for line in iter_resp_lines(response):
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ApiException(status=int(status.get("code") or 500), reason=str(status.get("message") or ""))
                yield event
        finally:
            self._responses.pop(kind, None)
            response.release_conn()

    def _emit(self, events: list[RunEvent]) -> None:
        for event in events:
            try:
                self.notifier(event)
            except Exception as error:  # a notifier problem must not stop the watch
                log.warning("watch: notifier failed on %s of %s: %s", event.kind.value, event.run_id, error)

    def _apply(self, kind: str, event_type: str, obj: Obj) -> None:
        events, found = self.engine.apply_all(kind, event_type, obj)
        self._emit(events)
        for observation in found:
            if self.observer is None:
                break
            try:
                self.observer(observation)
            except Exception as error:
                log.warning("watch: could not record the OOM of %s/%s: %s", observation.run_id, observation.task, error)

    def _relist(self, kind: str, first: bool) -> str:
        items, resource_version = self._list(kind)
        names = {str(_meta(item).get("name")) for item in items}
        self.engine.forget_missing(kind, names)
        for item in items:
            if first:
                self.engine.seed(kind, item)
            else:
                self._apply(kind, "MODIFIED", item)
        log.info("watch: listed %d %ss in %s at resourceVersion %s", len(items), kind, self.namespace, resource_version)
        return resource_version

    def watch_loop(self, kind: str) -> None:
        """List, then watch from the list's version; resume after drops, relist after 410 Gone."""
        from kubernetes.client.exceptions import ApiException

        resource_version = ""
        first = True
        just_listed = False
        while not self.stop_event.is_set():
            try:
                just_listed = not resource_version
                if just_listed:
                    resource_version = self._relist(kind, first)
                    first = False
                    self.synced[kind].set()
                for event in self._stream(kind, resource_version):
                    if self.stop_event.is_set():
                        break
                    obj = event.get("object") or {}
                    resource_version = str(_meta(obj).get("resourceVersion") or resource_version)
                    if event.get("type") == "BOOKMARK":
                        continue
                    try:
                        self._apply(kind, str(event.get("type") or ""), obj)
                    except Exception as error:  # one odd object must not stop the watch
                        log.warning("watch: skipped a %s event (%s)", kind, error)
            except ApiException as error:
                if error.status == 410:
                    log.info("watch: %ss at resourceVersion %s are gone (410); relisting", kind, resource_version)
                    resource_version = ""
                    if just_listed:  # gone straight after a list: do not spin on the API server
                        self.stop_event.wait(self.retry_delay)
                    continue
                log.warning("watch: %ss in %s: HTTP %s %s; retrying", kind, self.namespace, error.status, error.reason)
                self.stop_event.wait(self.retry_delay)
            except Exception as error:  # dropped connection, API server restarting: resume from the version
                if self.stop_event.is_set():
                    break
                log.info("watch: %s stream dropped (%s); resuming at resourceVersion %s", kind, error, resource_version)
                self.stop_event.wait(self.retry_delay)

    def pending_loop(self, interval: float) -> None:
        while not self.stop_event.wait(interval):
            self._emit(self.engine.check_pending(time.time()))

    def start(self, pending_interval: float = 30.0) -> None:
        """Start the workflow watch, the pod watch and the never-started check in daemon threads."""
        targets: list[tuple[str, Callable[[], None]]] = [
            ("workflow", lambda: self.watch_loop("workflow")),
            ("pod", lambda: self.watch_loop("pod")),
            ("pending", lambda: self.pending_loop(pending_interval)),
        ]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"headrace-watch-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for response in list(self._responses.values()):  # unblock reads of open streams now
            shutdown = getattr(response, "shutdown", None)
            if callable(shutdown):
                shutdown()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []


def _default_api_client() -> Any:
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        import os

        try:
            # An explicit path: the client's default is KUBECONFIG as it was at its first import.
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config"))
        except Exception as error:
            from steps.core.errors import ConfigError

            raise ConfigError(
                f"watch: no Kubernetes configuration ({error}); run inside the cluster or set KUBECONFIG"
            ) from error
    return client.ApiClient()


def run_watcher(
    settings: Any,
    namespace: str | None,
    notifier: Callable[[RunEvent], None],
    *,
    api_client: Any = None,
    stop: threading.Event | None = None,
) -> None:
    """Watch ``namespace`` (default: ``settings.argo_namespace``) until ``stop`` is set (or forever).

    The entry point for the control room Deployment: ``notifier`` is the control room's
    :class:`~control_room.notifications.notifier.Notifier` (or a function storing the event and notifying).
    """
    pending = settings.watch_pending_seconds
    watcher = Watcher(
        notifier,
        namespace or settings.argo_namespace,
        api_client=api_client,
        ui_url=settings.argo_ui_url,
        pending_seconds=pending,
    )
    watcher.start()
    try:
        (stop or threading.Event()).wait()
    finally:
        watcher.stop()


class Recorder:
    """What the watcher does in the control room: store each event (closing runs whose exit handler
    never reported), then notify; store each OOM observation (enriched with the input size and
    instance the sizing decision of that attempt recorded) so the retry is sized one step up.
    Errors are logged; the watch goes on."""

    def __init__(self, store: Any, notifier: Callable[[RunEvent], None] | None) -> None:
        self.store = store
        self.notifier = notifier

    def __call__(self, event: RunEvent) -> None:
        repeat = False
        try:
            repeat = bool(self.store.add_event(event).repeat)
        except Exception as error:
            log.warning("watch: could not store %s of %s: %s", event.kind.value, event.run_id, error)
        if self.notifier is not None and not repeat:  # the exit handler already reported this end
            self.notifier(event)

    def observe(self, observation: Observation) -> None:
        try:
            self.store.add_observation(with_decision(observation, self._decisions(observation)))
        except Exception as error:
            log.warning("watch: could not store the OOM of %s/%s: %s", observation.run_id, observation.task, error)

    def _decisions(self, observation: Observation) -> list[dict[str, Any]]:
        try:
            found: list[dict[str, Any]] = self.store.decisions(
                pipeline=observation.pipeline, task=observation.task, run_id=observation.run_id
            )
            return found
        except Exception as error:
            log.info("watch: no decisions for %s/%s (%s)", observation.run_id, observation.task, error)
            return []


def with_decision(observation: Observation, decisions: list[dict[str, Any]]) -> Observation:
    """``observation`` with the input size (and instance type) of the sizing decision behind the
    attempt, so the OOM also teaches a floor at that input size; unchanged without decisions.

    The decision behind it is the newest one of the run with the pod's memory, else of the same
    attempt, else the newest; its instance type is kept only when its memory is the pod's (the
    pod's own limit is what was too small).
    """
    if not decisions:
        return observation
    matching = [d for d in decisions if observation.memory and d.get("memory") == observation.memory]
    same = [d for d in decisions if d.get("attempt") == observation.attempt]
    chosen = (matching or same or decisions)[0]  # newest first
    trusted = bool(matching) or not observation.memory
    return dataclasses.replace(
        observation,
        input_bytes=int(chosen.get("input_bytes") or 0),
        instance_type=(str(chosen.get("instance_type") or "") or None) if trusted else None,
        memory=observation.memory or chosen.get("memory"),
        cpu=observation.cpu or chosen.get("cpu"),
    )


def recorder(store: Any, notifier: Callable[[RunEvent], None] | None) -> Recorder:
    """The watcher's notifier for the control room (see :class:`Recorder`)."""
    return Recorder(store, notifier)
