"""Logs of a run on Argo, read from the Argo Server's log stream.

``GET /api/v1/workflows/{ns}/{name}/log`` answers with one JSON object per line
(``{"result": {"content": ..., "podName": ...}}``), kept open while ``follow`` is set. Hera 7.1's
``workflow_logs`` parses the whole body as one JSON document and fails on it, so the stream is read
here line by line with httpx. Without an Argo Server the pods' logs are read through the
Kubernetes API instead. ``headrace logs`` (the local runner's command) delegates here for runs
that are not local.

Attempts are numbered from 1 as ``headrace status`` shows them; Argo numbers a task's retries from
0 (``train(0)``, ``train(1)``, and ``train(1).train`` for a sized task's pod).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipelines.argo.client import Connection, resolve_connection, translate_status, unreachable
from pipelines.argo.submit import run_status
from steps.core.errors import NotFoundError, TransientError
from steps.core.naming import NODE_NAME_ANNOTATION, WORKFLOW_LABEL, task_and_attempt
from steps.core.settings import Settings


def _pods_of(connection: Connection, run: str, task: str, attempt: int | None = None) -> tuple[dict[str, str], int]:
    """Pod name (and node id) -> task name for the run's pods, restricted to ``task`` and
    ``attempt`` when given; and how many pods that is."""
    from pipelines.argo.client import open_transport

    transport = open_transport(connection)
    try:
        status = run_status(transport.get("workflows", run))
    finally:
        transport.close()
    started = [t for t in status.tasks if t.pod_name]
    if task:
        started = [t for t in started if t.name == task]
        if not started:
            names = sorted({t.name for t in status.tasks})
            raise NotFoundError(f"run {run}: no task {task!r} has started; tasks so far: {', '.join(names) or 'none'}")
    if attempt is not None:
        tried = sorted({t.attempt for t in started})
        started = [t for t in started if t.attempt == attempt]
        if not started:
            raise NotFoundError(_no_attempt(run, task, attempt, tried))
    pods = {t.pod_name: t.name for t in started}
    pods.update({t.node_id: t.name for t in started})
    return pods, len(started)


def _no_attempt(run: str, task: str | None, attempt: int, tried: list[int]) -> str:
    where = f"run {run}" + (f", task {task}," if task else "")
    return f"--attempt {attempt}: {where} has no attempt {attempt}; its attempts are {', '.join(map(str, tried))}"


def stream_logs(
    run: str,
    *,
    task: str | None = None,
    follow: bool = False,
    settings: Settings,
    connection: Connection | None = None,
    attempt: int | None = None,
) -> Iterator[str]:
    """Log lines of ``run`` (all tasks, or one ``task``; every attempt, or only ``attempt``),
    following the stream while ``follow``.

    Without ``task`` each line is prefixed with its task name (``train | epoch 3``). The
    connection comes from ``settings`` and ``ARGO_*`` as for every Argo command.
    """
    import httpx

    conn = connection or resolve_connection(settings)
    if conn.transport != "argo":
        yield from kubernetes_logs(conn, run, task=task, follow=follow, attempt=attempt)
        return
    pods, count = _pods_of(conn, run, task or "", attempt)
    only = bool(task) or attempt is not None
    url = f"{conn.server}/api/v1/workflows/{conn.namespace}/{run}/log"
    query = {"logOptions.container": "main", "logOptions.follow": "true" if follow else "false"}
    if only and count == 1:
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
                line = _line(raw, pods, only=only, prefix=not task)
                if line is not None:
                    yield line
    except httpx.ConnectError as error:
        raise unreachable(conn, error) from error
    except httpx.TimeoutException as error:
        raise TransientError(f"logs of run {run}: {conn.server} stopped answering ({error}); try again") from error


def _task_and_attempt(node_name: str) -> tuple[str, int]:
    """The task and attempt of a pod's node (``run.train(1)`` and ``run.train(1).train`` -> train, 2)."""
    return task_and_attempt(node_name.rsplit(".", 1)[-1], node_name)


def kubernetes_logs(
    connection: Connection, run: str, *, task: str | None, follow: bool, attempt: int | None = None
) -> Iterator[str]:
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
        found = [
            (p.metadata.name, *_task_and_attempt((p.metadata.annotations or {}).get(NODE_NAME_ANNOTATION, "")))
            for p in pods
        ]
        if task:
            chosen = [(pod, name, tried) for pod, name, tried in found if name == task]
            if not chosen:
                names = sorted({name for _, name, _ in found})
                raise NotFoundError(
                    f"run {run}: no task {task!r} has started; tasks so far: {', '.join(names) or 'none'}"
                )
            found = chosen
        elif not found:
            transport.get("workflows", run)  # a missing run is "not found", not silence
        if attempt is not None:
            tried_ones = sorted({tried for _, _, tried in found})
            found = [entry for entry in found if entry[2] == attempt]
            if not found:
                raise NotFoundError(_no_attempt(run, task, attempt, tried_ones))
        for pod, name, _ in found:

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


def _line(raw: str, pods: dict[str, str], *, only: bool, prefix: bool) -> str | None:
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
    if only and pod not in pods:
        return None
    return f"{pods.get(pod) or _task_from_pod(pod)} | {content}" if prefix else content


def _task_from_pod(pod: str) -> str:
    """The template part of a pod that started after the run was read (``<run>-<template>-<hash>``)."""
    head, _, tail = pod.rpartition("-")
    return head if tail.isdigit() and head else pod
