"""Names headrace and Argo give things: labels, annotations, reserved node names, attempt numbers.

Written by the compiler and submitter (``pipelines.argo``), read back by the watcher
(``control_room.watch.engine``), the exit handler and the log reader: one module so the writer and
every reader agree. Attempts are numbered from 1 everywhere in headrace; Argo numbers a retried
node's children from 0 (``train(0)`` is the first attempt), and only this module converts.
"""

from __future__ import annotations

import re

#: Labels headrace puts on what it submits and deploys.
PIPELINE_LABEL = "headrace.dev/pipeline"
TASK_LABEL = "headrace.dev/task"
RUN_DATE_LABEL = "headrace.dev/run-date"
TRIGGER_LABEL = "headrace.dev/trigger"

#: Labels and annotations the Argo controller sets.
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"
CRON_LABEL = "workflows.argoproj.io/cron-workflow"
PHASE_LABEL = "workflows.argoproj.io/phase"
NODE_NAME_ANNOTATION = "workflows.argoproj.io/node-name"
SCHEDULED_TIME_ANNOTATION = "workflows.argoproj.io/scheduled-time"

#: Task names headrace reserves: ``headrace-*`` (its own nodes) and ``size-<task>`` (sizing nodes).
RESERVED_PREFIX = "headrace-"
SIZING_NODE_PREFIX = "size-"
#: The onExit node that reports a workflow's final status.
EXIT_HANDLER_NODE = "headrace-exit"

_ATTEMPT = re.compile(r"^(?P<task>.+?)\((?P<n>\d+)\)$")


def node_attempt(display_name: str) -> tuple[str, int | None]:
    """``train(1)`` -> ``("train", 2)``; ``train`` -> ``("train", None)`` (the name carries no attempt)."""
    match = _ATTEMPT.match(display_name)
    if match:
        return match["task"], int(match["n"]) + 1
    return display_name, None


def attempt_in_path(path: str) -> int | None:
    """The attempt a node belongs to from its full Argo name, e.g. ``wf.train(1).train`` -> 2.

    A sized task is retried as a whole (its sizing node and its pod, in a nested DAG), so the
    retry index sits on the DAG node, not on the pod's own display name: the innermost
    ``name(N)`` segment of the path tells the attempt. None when no segment carries one.
    """
    for segment in reversed(path.split(".")):
        _, attempt = node_attempt(segment)
        if attempt is not None:
            return attempt
    return None


def task_and_attempt(display_name: str, path: str = "") -> tuple[str, int]:
    """A node's task and attempt: from its display name (``train(1)``), else from its full name's
    path (a sized task's pod, ``wf.train(1).train``), else the first attempt."""
    task, attempt = node_attempt(display_name)
    if attempt is None:
        attempt = attempt_in_path(path) or 1
    return task, attempt


def task_of_node(node_name: str) -> str:
    """The task a pod's node belongs to: ``run.train(1)`` and ``run.train(1).train`` -> ``train``."""
    return node_attempt(node_name.rsplit(".", 1)[-1])[0]
