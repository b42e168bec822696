"""``python -m steps exit-handler MODULE:PIPELINE --run-id ... --status ...``: Argo's onExit reporter.

Every compiled workflow runs this when it ends, whatever the outcome, with what only exit handlers
get from Argo: ``{{workflow.status}}``, ``{{workflow.duration}}`` and ``{{workflow.failures}}``
(a JSON list of the failed nodes). It sends the run's final :class:`~steps.core.contract.RunEvent`
to the control room, which stores it (closing the run even when the watcher was down) and
notifies Slack and Datadog.

It never fails the workflow: whatever goes wrong (control room unreachable, a pipeline module
that no longer imports, malformed arguments), it logs one warning line and exits 0 — a failing
exit handler would turn a succeeded run red and hide the real outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from steps.core.contract import EventKind, RunEvent
from steps.core.naming import EXIT_HANDLER_NODE, SIZING_NODE_PREFIX, node_attempt

#: Argo node names of headrace's own infrastructure (sizing nodes, this handler): never "the failing task".
_INFRA_PREFIXES = (SIZING_NODE_PREFIX, EXIT_HANDLER_NODE)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="MODULE:PIPELINE")
    parser.add_argument("--run-id", required=True, help="{{workflow.name}}")
    parser.add_argument("--status", default="", help="{{workflow.status}}: Succeeded, Failed or Error")
    parser.add_argument("--duration", default="", help="{{workflow.duration}}: seconds")
    parser.add_argument("--failures", default="", help="{{workflow.failures}}: JSON list of failed nodes")
    parser.add_argument("--run-date", default="", help="{{workflow.parameters.run_date}}: for the completion message")


def _warn(message: str) -> None:
    print(f"warning: exit-handler: {message}", file=sys.stderr, flush=True)


def parse_failures(raw: str) -> list[dict[str, Any]]:
    """Argo's failures JSON; an unresolved ``{{workflow.failures}}`` (no failure) or junk is ``[]``.

    The real controller (v4) substitutes the list as a JSON *string* (``"[{\\"displayName\\"...``):
    a string is decoded once more."""
    text = raw.strip()
    if not text or text.startswith("{{") or text == "null":
        return []
    try:
        value = json.loads(text)
        if isinstance(value, str):
            value = json.loads(value) if value.strip() else []
    except json.JSONDecodeError:
        _warn(f"--failures is not JSON ({text[:80]!r}); reporting the run without its failing task")
        return []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def failing_task(failures: list[dict[str, Any]], run_id: str = "") -> tuple[str | None, int | None, str]:
    """The task that failed the run (the last failure that is not headrace's own node, nor the
    workflow's root node, which Argo lists too and which fails last), attempt, message."""
    ordered = sorted(failures, key=lambda f: str(f.get("finishedAt") or ""), reverse=True)
    for failure in ordered:
        name = str(failure.get("displayName") or failure.get("templateName") or "")
        if not name or name.startswith(_INFRA_PREFIXES) or (run_id and name == run_id):
            continue
        task, attempt = node_attempt(name)
        return task, attempt, str(failure.get("message") or "").strip()
    return None, None, ""


def _kind(status: str) -> EventKind:
    lowered = status.strip().lower()
    if lowered == "succeeded":
        return EventKind.RUN_SUCCEEDED
    if any(word in lowered for word in ("stop", "terminat", "cancel", "shutdown")):
        return EventKind.RUN_CANCELLED
    return EventKind.RUN_FAILED


def _duration(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def build_event(
    pipeline: str,
    run_id: str,
    status: str,
    duration: str,
    failures: str,
    *,
    ui_url: str = "",
    namespace: str = "",
    now: float | None = None,
) -> RunEvent:
    """The run's final event from the exit handler's arguments (pure)."""
    kind = _kind(status)
    task, attempt, message = (
        failing_task(parse_failures(failures), run_id) if kind is not EventKind.RUN_SUCCEEDED else (None, None, "")
    )
    if kind is EventKind.RUN_FAILED and not message:
        message = f"workflow {status.strip().lower() or 'failed'}"
    url = f"{ui_url.rstrip('/')}/workflows/{namespace}/{run_id}" if ui_url else None
    return RunEvent(
        kind=kind,
        pipeline=pipeline,
        run_id=run_id,
        task=task,
        attempt=attempt,
        at=time.time() if now is None else now,
        duration_seconds=_duration(duration),
        reason=message,
        url=url,
        source="exit-handler",
    )


def _pipeline_name(spec: str) -> str:
    """The pipeline's own name; the spec's attribute name when the module cannot be loaded."""
    try:
        from steps.runtime.loader import load_object

        name = getattr(load_object(spec), "name", None)
        if isinstance(name, str) and name:
            return name
    except Exception as error:
        _warn(f"cannot load {spec} ({error}); reporting under the name in the spec")
    return spec.rsplit(":", 1)[-1] or spec


_OUTCOMES = {
    EventKind.RUN_SUCCEEDED: "succeeded",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}


def _publish_completion(spec: str, event: RunEvent, raw_run_date: str, settings: Any) -> None:
    """What ``After(...)`` triggers listen to (:mod:`steps.runtime.events`). Output sizes are not known
    here (they are in the control room), so the message carries none."""
    from steps.runtime.events import completion_message, publish_completion

    run_date = "" if raw_run_date.startswith("{{") else raw_run_date.strip()
    if run_date:
        try:
            from steps.runtime.loader import load_object
            from steps.runtime.task import resolve_run_date

            run_date = resolve_run_date(run_date, getattr(load_object(spec), "timezone", "UTC")).isoformat()
        except Exception as error:
            _warn(f"run date {run_date!r} not read as a day ({error}); published as given")
    message = completion_message(event.pipeline, event.run_id, run_date, _OUTCOMES[event.kind], {})
    if publish_completion(settings, message):
        print(f"exit-handler: completion published ({event.pipeline}.{message['outcome']})", flush=True)


def main(args: argparse.Namespace) -> int:
    try:
        from steps.core.settings import load_settings

        settings = load_settings()
        event = build_event(
            _pipeline_name(args.spec),
            args.run_id,
            args.status,
            args.duration,
            args.failures,
            ui_url=settings.argo_ui_url,
            namespace=settings.argo_namespace,
        )
        from steps.runtime.client import http_room

        room = http_room(settings)
        if room is not None:
            room.emit(event)  # logs a warning itself when the control room is unreachable
        if settings.events_url:
            _publish_completion(args.spec, event, args.run_date, settings)
        print(
            f"exit-handler: {event.pipeline} {event.run_id} {event.kind.value}"
            + (f" ({event.task}: {event.reason})" if event.task else ""),
            flush=True,
        )
    except Exception as error:  # never fail the workflow over its report
        _warn(f"the run's final status was not reported ({type(error).__name__}: {error})")
    return 0
