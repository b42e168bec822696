"""Logs of a run on Argo, read from the Argo Server's log stream.

``GET /api/v1/workflows/{ns}/{name}/log`` answers with one JSON object per line
(``{"result": {"content": ..., "podName": ...}}``), kept open while ``follow`` is set. Hera 7.1's
``workflow_logs`` parses the whole body as one JSON document and fails on it, so the stream is read
here line by line with httpx. Without an Argo Server the pods' logs are read through the
Kubernetes API instead. ``headrace logs`` (the local runner's command) delegates here for runs
that are not local.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipelines.argo.client import Connection, resolve_connection, translate_status, unreachable
from pipelines.argo.submit import run_status
from steps.core.errors import NotFoundError, TransientError
from steps.core.naming import NODE_NAME_ANNOTATION, WORKFLOW_LABEL, task_of_node
from steps.core.settings import Settings

#: The annotation Argo's controller puts on every pod: the node (``<run>.<task>(<attempt>)``).


def _pods_of(connection: Connection, run: str, task: str) -> dict[str, str]:
    """Pod name -> task name for the run's pods, restricted to ``task`` when given."""
    from pipelines.argo.client import open_transport

    transport = open_transport(connection)
    try:
        status = run_status(transport.get("workflows", run))
    finally:
        transport.close()
    pods = {t.pod_name: t.name for t in status.tasks if t.pod_name}
    pods.update({t.node_id: t.name for t in status.tasks if t.pod_name})
    if task:
        chosen = {pod: name for pod, name in pods.items() if name == task}
        if not chosen:
            names = sorted({t.name for t in status.tasks})
            raise NotFoundError(f"run {run}: no task {task!r} has started; tasks so far: {', '.join(names) or 'none'}")
        return chosen
    return pods


def stream_logs(
    run: str,
    *,
    task: str | None = None,
    follow: bool = False,
    settings: Settings,
    connection: Connection | None = None,
) -> Iterator[str]:
    """Log lines of ``run`` (all tasks, or one ``task``), following the stream while ``follow``.

    Without ``task`` each line is prefixed with its task name (``train | epoch 3``). The
    connection comes from ``settings`` and ``ARGO_*`` as for every Argo command.
    """
    import httpx

    conn = connection or resolve_connection(settings)
    if conn.transport != "argo":
        yield from kubernetes_logs(conn, run, task=task, follow=follow)
        return
    pods = _pods_of(conn, run, task or "")
    url = f"{conn.server}/api/v1/workflows/{conn.namespace}/{run}/log"
    query = {"logOptions.container": "main", "logOptions.follow": "true" if follow else "false"}
    if task and len(pods) == 1:
        query["podName"] = next(iter(pods))
    headers = {"Accept": "application/json"}
    if conn.token:
        headers["Authorization"] = conn.token if " " in conn.token else f"Bearer {conn.token}"
    timeout = httpx.Timeout(10.0, read=None if follow else 60.0)
    try:
        with (
            httpx.Client(verify=conn.verify_ssl, timeout=timeout) as client,
            client.stream("GET", url, params=query, headers=headers) as response,
        ):
            if response.status_code >= 400:
                response.read()
                try:
                    message = str(response.json().get("message", ""))
                except ValueError:
                    message = response.text
                raise translate_status(
                    response.status_code, message, kind="workflows", name=run, verb="logs of", connection=conn
                )
            for raw in response.iter_lines():
                line = _line(raw, pods, only=bool(task))
                if line is not None:
                    yield line
    except httpx.ConnectError as error:
        raise unreachable(conn, error) from error
    except httpx.TimeoutException as error:
        raise TransientError(f"logs of run {run}: {conn.server} stopped answering ({error}); try again") from error


def kubernetes_logs(connection: Connection, run: str, *, task: str | None, follow: bool) -> Iterator[str]:
    """The same lines read from the pods' ``main`` containers through the Kubernetes API, for
    clusters whose Argo Server is not reachable. Pods are read one after another in start order,
    so with ``follow`` a later pod's lines come once the earlier ones have finished."""
    from kubernetes import client

    from pipelines.argo.client import KubernetesTransport

    transport = KubernetesTransport(connection)
    core = client.CoreV1Api(transport.api_client)
    where = connection.namespace
    selector = f"{WORKFLOW_LABEL}={run}"
    try:
        listed = transport.call(
            "workflows", run, "logs of", lambda: core.list_namespaced_pod(where, label_selector=selector)
        )
        pods = sorted(
            listed.items or [],
            key=lambda p: (str(p.metadata.creation_timestamp or ""), p.metadata.name),
        )
        named = [
            (p.metadata.name, task_of_node((p.metadata.annotations or {}).get(NODE_NAME_ANNOTATION, ""))) for p in pods
        ]
        if task:
            chosen = [(pod, name) for pod, name in named if name == task]
            if not chosen:
                names = sorted({name for _, name in named})
                raise NotFoundError(
                    f"run {run}: no task {task!r} has started; tasks so far: {', '.join(names) or 'none'}"
                )
            named = chosen
        elif not named:
            transport.get("workflows", run)  # a missing run is "not found", not silence
        for pod, name in named:

            def read(pod: str = pod) -> Any:
                return core.read_namespaced_pod_log(pod, where, container="main", follow=follow, _preload_content=False)

            try:
                response: Any = transport.call("workflows", run, "logs of", read)
            except NotFoundError:
                continue  # the pod was garbage-collected (podGC); its lines are gone
            buffer = b""
            for chunk in response.stream(4096):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", errors="replace")
                    yield text if task else f"{name} | {text}"
            if buffer:
                text = buffer.decode("utf-8", errors="replace")
                yield text if task else f"{name} | {text}"
            response.release_conn()
    finally:
        transport.close()


def _line(raw: str, pods: dict[str, str], *, only: bool) -> str | None:
    """One log line from one stream entry; ``None`` for keep-alives and other tasks' lines."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return raw
    if "error" in entry and "result" not in entry:
        message = entry["error"].get("message", "") if isinstance(entry["error"], dict) else str(entry["error"])
        raise TransientError(f"the log stream broke off: {message}; run the command again")
    result = entry.get("result") or {}
    content = str(result.get("content", ""))
    pod = str(result.get("podName", ""))
    if only:
        return content if pod in pods else None
    return f"{pods.get(pod) or _task_from_pod(pod)} | {content}"


def _task_from_pod(pod: str) -> str:
    """The template part of a pod that started after the run was read (``<run>-<template>-<hash>``)."""
    head, _, tail = pod.rpartition("-")
    return head if tail.isdigit() and head else pod
