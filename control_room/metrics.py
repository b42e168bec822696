"""The control room's Prometheus metrics, correct however many worker processes answer.

``prometheus_client`` does the counting and the text format. ``headrace control-room serve``
points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before its workers start (see
:func:`multiprocess_folder`); each worker's counters then live in files there and ``/metrics``,
whichever worker answers it, adds all of them up. Without that variable (one process, the tests)
each app counts in a registry of its own. What is read at scrape time (uptime, stored rows) is a
collector: one value from the worker that answers.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: Request latency buckets, seconds: the service answers in milliseconds; a slow database shows.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_folder() -> str:
    """Make every worker process started from now on count into one shared folder (a fresh one
    unless ``PROMETHEUS_MULTIPROC_DIR`` is set already); returns it."""
    folder = os.environ.get(MULTIPROC_VARIABLE) or tempfile.mkdtemp(prefix="headrace-metrics-")
    os.environ[MULTIPROC_VARIABLE] = folder
    return folder


class _ScrapeTime(Collector):
    """Gauges read when ``/metrics`` is asked for."""

    def __init__(self, gauges: Callable[[], dict[str, tuple[float, str]]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (value, help_text) in sorted(self.gauges().items()):
            yield GaugeMetricFamily(name, help_text, value=value)


class Metrics:
    """The service's counters and latency histogram, and their exposition."""

    def __init__(self, gauges: Callable[[], dict[str, tuple[float, str]]]) -> None:
        self.exposition_registry = CollectorRegistry()
        if os.environ.get(MULTIPROC_VARIABLE):
            MultiProcessCollector(self.exposition_registry)  # type: ignore[no-untyped-call]
            own: CollectorRegistry | None = None  # counted in files, collected from the folder
        else:
            own = self.exposition_registry
        self.exposition_registry.register(_ScrapeTime(gauges))
        self.requests = Counter(
            "headrace_control_room_requests",
            "HTTP requests answered, by route and status",
            ["method", "route", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "headrace_control_room_request_duration_seconds",
            "Seconds spent answering, by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.observations = Counter(
            "headrace_control_room_observations", "Observations recorded, by outcome", ["outcome"], registry=own
        )
        self.decisions = Counter(
            "headrace_control_room_decisions",
            "Sizing decisions, by source and target",
            ["source", "target"],
            registry=own,
        )
        self.events = Counter("headrace_control_room_events", "Run events, by kind", ["kind"], registry=own)
        self.notifier_failures = Counter(
            "headrace_control_room_notifier_failures", "Notifier errors (Slack, Datadog)", registry=own
        )

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> str:
        """Every series in the Prometheus text format."""
        return generate_latest(self.exposition_registry).decode()


class CountRequests:
    """Pure ASGI middleware counting requests and their latency per route (cheaper than
    Starlette's BaseHTTPMiddleware); outermost, so refusals before the app are counted too."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        begin = time.perf_counter()

        async def remember_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.request(scope["method"], route, status, time.perf_counter() - begin)
