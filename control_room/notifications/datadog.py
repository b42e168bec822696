"""Datadog: run events and observations as DogStatsD metrics (the ``datadog`` package).

Every metric name, type and tag is listed in ``docs/metrics.md``; keep the two in step. The agent
is found the standard way: ``DD_AGENT_HOST`` / ``DD_DOGSTATSD_PORT`` (defaults ``localhost:8125``).

Metrics must never hurt a pipeline: a missing agent (closed port, unresolvable host) drops the
metrics with one warning, instead of one log line per packet (what the datadog package does on its
own) or an exception. Nor may they slow one: the caller only puts the metric on a bounded queue
(:data:`MAX_PENDING`; beyond it metrics are dropped and counted) and one background thread does
the sending, including the host name lookup a DNS outage can stall for seconds. :meth:`Metrics.close`
waits a bounded :data:`CLOSE_SECONDS` for the queue, so a short-lived process still sends its
metrics. UDP has no retries: each metric is sent at most once, never duplicated.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Mapping
from typing import Any

from steps.core.contract import EventKind, Observation, RunEvent

log = logging.getLogger("headrace.datadog")

PREFIX = "headrace"
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8125
#: Metrics waiting for the sending thread at most; more are dropped (and counted) rather than kept.
MAX_PENDING = 10_000
#: How long :meth:`Metrics.close` waits for the queued metrics to be sent.
CLOSE_SECONDS = 2.0

_RUN_STATUS = {
    EventKind.RUN_SUCCEEDED: "succeeded",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}


def _tag_value(value: object) -> str:
    """DogStatsD tags may not contain ``,`` ``|`` or ``#``; keep them readable."""
    text = str(value).strip()
    for bad in (",", "|", "#", "\n"):
        text = text.replace(bad, "_")
    return text[:200]


def reason_tag(reason: str) -> str:
    """A failure reason as a low-cardinality tag value: ``oomkilled``, ``exit_code_1``, ``timeout``..."""
    text = reason.strip().lower()
    if not text:
        return "unknown"
    if "oom" in text:
        return "oomkilled"
    if "timeout" in text or "timed out" in text or "deadline" in text:
        return "timeout"
    if "imagepullbackoff" in text or "errimagepull" in text:
        return "image_pull"
    if "evicted" in text:
        return "evicted"
    if text.startswith("exit code"):
        code = text.removeprefix("exit code").strip().split()[0] if text != "exit code" else ""
        return f"exit_code_{code}" if code.isdigit() else "exit_code"
    first = text.split(":")[0].split("(")[0].strip().replace(" ", "_")
    return _tag_value(first)[:40] or "unknown"


class _QuietPacketErrors(logging.Filter):
    """Drops the datadog package's per-packet 'Error submitting packet' warnings (one per metric);
    :class:`Metrics` logs one warning of its own instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "submitting packet" not in record.getMessage()


_QUIET = _QuietPacketErrors()


def _statsd_class() -> Any:
    """A DogStatsd that reports its first dropped packet (it closes its socket on every send error)."""
    from datadog.dogstatsd.base import DogStatsd

    class ReportingDogStatsd(DogStatsd):
        on_drop: Any = None

        def close_socket(self, quiet: bool = False) -> None:
            if self.on_drop is not None and not quiet:
                self.on_drop()
            super().close_socket(quiet=quiet)

    return ReportingDogStatsd


class Metrics:
    """DogStatsD metrics for run events (:meth:`event`) and task observations (:meth:`observation`).

    Unbuffered: each metric is one UDP datagram sent at once, so nothing is lost when a short-lived
    process (the exit handler, a local run) ends.
    """

    def __init__(
        self,
        *,
        host: str | None = None,
        port: int | None = None,
        constant_tags: list[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.host = host or env.get("DD_AGENT_HOST") or DEFAULT_HOST
        raw_port = port if port is not None else env.get("DD_DOGSTATSD_PORT") or DEFAULT_PORT
        try:
            self.port = int(raw_port)
        except ValueError:
            log.warning("datadog: DD_DOGSTATSD_PORT=%r is not a port number; using %d", raw_port, DEFAULT_PORT)
            self.port = DEFAULT_PORT
        self._warned = False
        self._lock = threading.Lock()
        logger = logging.getLogger("datadog.dogstatsd")
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
        self._statsd = _statsd_class()(
            host=self.host,
            port=self.port,
            namespace=PREFIX,
            constant_tags=list(constant_tags or []),
            disable_telemetry=True,
            disable_buffering=True,
            disable_aggregation=True,
            origin_detection_enabled=False,
        )
        self._statsd.on_drop = self._dropped
        self._pending: queue.Queue[tuple[str, tuple[Any, ...], dict[str, Any]] | None] = queue.Queue(MAX_PENDING)
        self._sender: threading.Thread | None = None

    def _submit(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Queue one DogStatsD call for the sending thread; never blocks, never raises."""
        try:
            self._pending.put_nowait((method, args, kwargs))
        except queue.Full:  # the agent or its host lookup far too slow: drop the metric
            return
        if self._sender is None:
            with self._lock:
                if self._sender is None:
                    self._sender = threading.Thread(target=self._send_queued, name="headrace-dogstatsd", daemon=True)
                    self._sender.start()

    def _send_queued(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            method, args, kwargs = item
            try:
                getattr(self._statsd, method)(*args, **kwargs)
            except Exception as error:  # pragma: no cover - the datadog package swallows socket errors itself
                log.debug("datadog: %s dropped: %s", method, error)

    def _dropped(self) -> None:
        with self._lock:
            if self._warned:
                return
            self._warned = True
        log.warning(
            "datadog: no DogStatsD agent at %s:%d; metrics are dropped. "
            "Set DD_AGENT_HOST / DD_DOGSTATSD_PORT to the agent (or ignore this locally).",
            self.host,
            self.port,
        )

    @property
    def dropping(self) -> bool:
        """True once a packet could not be sent (no agent): the one warning has been logged."""
        return self._warned

    def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """Send what is queued (at most ``seconds``), then close the socket."""
        sender = self._sender
        if sender is not None:
            with contextlib.suppress(queue.Full):
                self._pending.put(None, timeout=seconds)
            sender.join(seconds)
            self._sender = None
        self._statsd.on_drop = None
        self._statsd.close_socket(quiet=True)

    def _send(self, method: str, name: str, value: float, tags: list[str]) -> None:
        self._submit(method, name, value, tags=tags)

    @staticmethod
    def _tags(event: RunEvent | Observation, **extra: object) -> list[str]:
        tags = [f"pipeline:{_tag_value(event.pipeline)}", f"run:{_tag_value(event.run_id)}"]
        if event.task:
            tags.append(f"task:{_tag_value(event.task)}")
        tags.extend(f"{k}:{_tag_value(v)}" for k, v in extra.items() if v not in (None, ""))
        return tags

    def event(self, event: RunEvent) -> None:
        """Metrics for one run event; see docs/metrics.md for the full list."""
        sizing = event.sizing or {}
        instance_type = sizing.get("instance_type") if sizing else None
        kind = event.kind
        if kind in (EventKind.TASK_SUCCEEDED, EventKind.TASK_FAILED):
            outcome = "succeeded" if kind is EventKind.TASK_SUCCEEDED else "failed"
            tags = self._tags(event, instance_type=instance_type, outcome=outcome)
            if event.duration_seconds is not None:
                self._send("histogram", "task.duration_seconds", event.duration_seconds, tags)
            if event.output_bytes is not None:
                self._send("gauge", "task.output_bytes", event.output_bytes, tags)
            if event.output_rows is not None:
                self._send("gauge", "task.output_rows", event.output_rows, tags)
            if kind is EventKind.TASK_FAILED:
                reason = reason_tag(event.reason)
                self._send(
                    "increment",
                    "task.failures",
                    1,
                    [*self._tags(event, instance_type=instance_type), f"reason:{reason}"],
                )
                self._failure_event(event, reason)
        elif kind is EventKind.TASK_RETRYING:
            self._send("increment", "task.retries", 1, self._tags(event, reason=reason_tag(event.reason)))
        elif kind is EventKind.TASK_STARTED:
            self._send("increment", "task.started", 1, self._tags(event, instance_type=instance_type))
        elif kind is EventKind.SIZING_DECIDED and sizing:
            tags = self._tags(
                event, instance_type=instance_type, target=sizing.get("target"), source=sizing.get("source")
            )
            self._send("gauge", "sizing.instance_count", float(sizing.get("instance_count") or 1), tags)
            if sizing.get("predicted_cost_usd") is not None:
                self._send("gauge", "sizing.predicted_cost_usd", float(sizing["predicted_cost_usd"]), tags)
            if sizing.get("predicted_duration_seconds") is not None:
                self._send(
                    "gauge", "sizing.predicted_duration_seconds", float(sizing["predicted_duration_seconds"]), tags
                )
        elif kind is EventKind.RUN_STARTED:
            self._send("increment", "run.started", 1, [*self._tags(event), f"trigger:{trigger_tag(event.reason)}"])
        elif kind in _RUN_STATUS:
            tags = self._tags(event, status=_RUN_STATUS[kind])
            self._send("increment", "run.completed", 1, tags)
            if event.duration_seconds is not None:
                self._send("histogram", "run.duration_seconds", event.duration_seconds, tags)
            if kind is EventKind.RUN_FAILED:
                self._failure_event(event, reason_tag(event.reason))

    def observation(self, observation: Observation, *, predicted_cost_usd: float | None = None) -> None:
        """Actual cost, peak memory and size of one finished attempt (what the control room learned)."""
        tags = self._tags(
            observation,
            instance_type=observation.instance_type,
            target=observation.target.value,
            outcome=observation.outcome.value,
        )
        self._send("gauge", "task.instance_count", float(observation.instance_count), tags)
        self._send("gauge", "task.input_bytes", float(observation.input_bytes), tags)
        if observation.peak_memory_bytes is not None:
            self._send("gauge", "task.peak_memory_bytes", float(observation.peak_memory_bytes), tags)
        if observation.cost_usd is not None:
            self._send("gauge", "task.cost_usd", observation.cost_usd, tags)
        if predicted_cost_usd is not None:
            self._send("gauge", "task.predicted_cost_usd", predicted_cost_usd, tags)

    def _failure_event(self, event: RunEvent, reason: str) -> None:
        what = f"{event.pipeline} {event.task}" if event.kind is EventKind.TASK_FAILED else f"{event.pipeline} run"
        text = f"run {event.run_id}: {event.reason or 'failed'}"
        if event.log_tail:
            text += "\n%%% \n```\n" + "\n".join(event.log_tail[-10:]) + "\n```\n %%%"
        if event.url:
            text += f"\n{event.url}"
        tags: list[str] = [*self._tags(event), f"reason:{reason}"]
        self._submit(
            "event",
            f"headrace: {what} failed",
            text[:4000],
            alert_type="error",
            aggregation_key=f"{event.pipeline}/{event.run_id}",
            source_type_name="headrace",
            tags=tags,
        )


def trigger_tag(reason: str) -> str:
    """What started a run, as a low-cardinality tag value: ``amqp``, ``sqs``, ``after`` (a
    pipeline's completion), or ``command`` (by hand, a backfill or a cron)."""
    if not reason.startswith("started by "):
        return "command"
    words = reason.removeprefix("started by ").split()
    if words[:1] == ["trigger"] and len(words) > 1:  # on Argo: "trigger <kind>-<name> (Argo Events)"
        words = words[1].split("-", 1)
    kind = words[0] if words else ""
    return kind if kind in ("amqp", "sqs", "after") else "command"
