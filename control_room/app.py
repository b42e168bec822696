"""The control room service: a versioned JSON API (OpenAPI at ``/openapi.json``), metrics, a page.

``create_app(store, policy, tokens=..., notifier=...)`` builds the FastAPI app; ``headrace
control-room serve`` runs it under uvicorn. The OpenAPI description is at ``/openapi.json``. Endpoints are plain ``def`` functions: the store does
blocking database I/O, which FastAPI runs in its thread pool.

Bodies are the contract dataclasses of :mod:`steps.contract`, validated by FastAPI; range checks
it cannot express on a plain dataclass (``input_bytes >= 0``, ``attempt >= 1``...) are made here
and answered with the same 422 shape, naming the field. Every route but ``/healthz`` needs a
bearer token when tokens are configured (``HEADRACE_CONTROL_ROOM_TOKEN`` or the mounted Secret file
``HEADRACE_CONTROL_ROOM_TOKEN_FILE``, re-read when it changes so a rotated Secret takes effect);
the page also accepts ``?token=`` once and keeps it in a cookie, because a browser cannot send a
header from its address bar.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel
from pydantic import Field as PydanticField

from control_room.heap import CollectorPauses, settle_heap
from control_room.sizing import Policy
from control_room.store import Store
from steps.contract import Observation, Outcome, RunEvent, SizingDecision, SizingRequest, to_dict

log = logging.getLogger("headrace.control_room")

Notifier = Callable[[RunEvent], None]
API_VERSION = "v1"
TOKEN_COOKIE = "headrace_token"
#: Threads answering requests in one worker process (see ``create_app``).
REQUEST_THREADS = 8


# ----------------------------------------------------------------------------- auth


class Tokens:
    """Accepted bearer tokens: fixed ones plus the lines of a (Secret-mounted) file."""

    def __init__(self, tokens: Iterable[str] = (), token_file: str | Path | None = None) -> None:
        self.fixed = [t.strip() for t in tokens if t and t.strip()]
        self.file = Path(token_file) if token_file else None
        self._cache: tuple[float, list[str]] = (-1.0, [])
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> Tokens:
        env = dict(os.environ) if environ is None else environ
        raw = env.get("HEADRACE_CONTROL_ROOM_TOKEN", "")
        return cls(raw.split(","), env.get("HEADRACE_CONTROL_ROOM_TOKEN_FILE") or None)

    def _from_file(self) -> list[str]:
        if self.file is None:
            return []
        try:
            mtime = self.file.stat().st_mtime
        except OSError:
            return []
        with self._lock:
            if mtime != self._cache[0]:
                lines = [line.strip() for line in self.file.read_text().splitlines()]
                self._cache = (mtime, [line for line in lines if line])
            return self._cache[1]

    @property
    def enabled(self) -> bool:
        return bool(self.fixed or self.file)

    def accepts(self, presented: str) -> bool:
        """Constant-time comparison against every accepted token."""
        if not presented:
            return False
        candidate = presented.encode()
        matched = False
        for token in [*self.fixed, *self._from_file()]:
            matched |= hmac.compare_digest(candidate, token.encode())
        return matched


# ----------------------------------------------------------------------------- metrics


class Metrics:
    """Counters for ``/metrics`` in the Prometheus text format (no client library needed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.help: dict[str, tuple[str, str]] = {}

    def add(
        self,
        name: str,
        value: float = 1.0,
        *,
        kind: str = "counter",
        help_text: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            self.counters[key] = self.counters.get(key, 0.0) + value
            self.help.setdefault(name, (kind, help_text))

    def render(self, gauges: dict[str, tuple[float, str]]) -> str:
        lines: list[str] = []
        with self._lock:
            names = sorted({name for name, _ in self.counters})
            for name in names:
                kind, help_text = self.help[name]
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for (metric, labels), value in sorted(self.counters.items()):
                    if metric == name:
                        lines.append(f"{name}{_labels(labels)} {_number(value)}")
        for name, (value, help_text) in sorted(gauges.items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {_number(value)}"]
        return "\n".join(lines) + "\n"


def _labels(labels: Sequence[tuple[str, str]]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + ",".join(escaped) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class _CountRequests:
    """Pure ASGI middleware counting requests and time per route (cheaper than BaseHTTPMiddleware)."""

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
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.add(
                "headrace_control_room_requests_total",
                help_text="HTTP requests by route and status",
                labels={"method": scope["method"], "route": path, "status": str(status)},
            )
            self.metrics.add(
                "headrace_control_room_request_seconds_total",
                time.perf_counter() - begin,
                help_text="Seconds spent answering, by route",
                labels={"route": path},
            )


# ----------------------------------------------------------------------------- validation


def _problem(field: str, message: str, value: Any) -> dict[str, Any]:
    return {"type": "value_error", "loc": ["body", field], "msg": message, "input": value}


def _check(problems: list[dict[str, Any]], obj: Any, field: str, ok: Callable[[Any], bool], message: str) -> None:
    value = getattr(obj, field)
    if not ok(value):
        problems.append(_problem(field, message, value))


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _common_checks(obj: Any, problems: list[dict[str, Any]]) -> None:
    for name in ("pipeline", "task", "run_id"):
        if hasattr(obj, name) and getattr(obj, name) is not None:
            _check(
                problems, obj, name, lambda v: bool(str(v).strip()) and len(str(v)) <= 200, "must be 1-200 characters"
            )


def validate_request(request: SizingRequest) -> None:
    problems: list[dict[str, Any]] = []
    _common_checks(request, problems)
    _check(problems, request, "input_bytes", lambda v: v >= 0, "must be >= 0")
    _check(problems, request, "input_rows", lambda v: v >= 0, "must be >= 0")
    _check(problems, request, "attempt", lambda v: v >= 1, "must be >= 1")
    _check(
        problems, request, "deadline_seconds", lambda v: v is None or (v > 0 and _finite(v)), "must be > 0 when given"
    )
    _check(problems, request, "bytes_per_row", lambda v: v is None or (v > 0 and _finite(v)), "must be > 0 when given")
    _check(
        problems,
        request,
        "previous_outcome",
        lambda v: v is None or v in {o.value for o in Outcome},
        f"must be one of {', '.join(o.value for o in Outcome)}",
    )
    if problems:
        raise RequestValidationError(problems)


def validate_observation(observation: Observation) -> None:
    problems: list[dict[str, Any]] = []
    _common_checks(observation, problems)
    _check(problems, observation, "attempt", lambda v: v >= 1, "must be >= 1")
    for name in ("input_bytes", "input_rows", "output_bytes", "output_rows"):
        _check(problems, observation, name, lambda v: v >= 0, "must be >= 0")
    _check(problems, observation, "instance_count", lambda v: v >= 1, "must be >= 1")
    _check(problems, observation, "duration_seconds", lambda v: v >= 0 and _finite(v), "must be >= 0")
    _check(problems, observation, "peak_memory_bytes", lambda v: v is None or v >= 0, "must be >= 0")
    _check(problems, observation, "cost_usd", lambda v: v is None or (v >= 0 and _finite(v)), "must be >= 0")
    if problems:
        raise RequestValidationError(problems)


def validate_event(event: RunEvent) -> None:
    problems: list[dict[str, Any]] = []
    _common_checks(event, problems)
    _check(problems, event, "attempt", lambda v: v is None or v >= 1, "must be >= 1 when given")
    _check(problems, event, "at", lambda v: v >= 0 and _finite(v), "must be unix seconds >= 0")
    if problems:
        raise RequestValidationError(problems)


# ----------------------------------------------------------------------------- the app


def create_app(
    store: Store,
    policy: Policy,
    *,
    tokens: Tokens | None = None,
    notifier: Notifier | None = None,
    threads: int = REQUEST_THREADS,
    collector: CollectorPauses | None = None,
) -> FastAPI:
    """The control room's ASGI app over ``store`` and ``policy``.

    ``notifier`` receives every stored :class:`RunEvent` (and, when it has an ``observe`` method,
    every observation); its failures are logged and counted, never returned to the caller.
    ``collector``, when given, adds the process's garbage-collection pauses to ``/metrics``.
    """
    accepted = tokens if tokens is not None else Tokens.from_environment()
    metrics = Metrics()
    started = time.time()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Endpoints are sync and run in AnyIO's thread pool. Its default 40 threads fight over
        # the GIL under load (a convoy that multiplies tail latency); a few threads keep the
        # database busy without that. More capacity comes from --workers, not from threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    app = FastAPI(
        title="headrace control room",
        version="1",
        description="Watches every task's result size and chooses the next task's instance size.",
        lifespan=lifespan,
        # The spec is served below behind the token; Swagger/ReDoc pages load their scripts from
        # a CDN, which a closed cluster network cannot reach, so they are not offered.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.policy = policy
    app.state.metrics = metrics

    def authorize(request: Request) -> None:
        if not accepted.enabled:
            return
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and accepted.accepts(presented.strip()):
            return
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token; send 'Authorization: Bearer <HEADRACE_CONTROL_ROOM_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )

    app.add_middleware(_CountRequests, metrics=metrics)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, Any]:
        """Liveness and readiness: the database answers."""
        try:
            store.ping()
        except Exception as error:
            raise HTTPException(status_code=503, detail=f"database unreachable: {type(error).__name__}") from error
        return {"status": "ok", "schema_version": store.version}

    @app.post(f"/{API_VERSION}/observations", dependencies=[Depends(authorize)], tags=["api"], response_model=Recorded)
    def post_observation(observation: Observation) -> Response:
        """Record what a task attempt did; sending the same (run, task, attempt) again is harmless."""
        validate_observation(observation)
        store.add_observation(observation)
        metrics.add(
            "headrace_control_room_observations_total",
            help_text="Observations recorded, by outcome",
            labels={"outcome": str(observation.outcome)},
        )
        observe = getattr(notifier, "observe", None)
        if callable(observe):
            try:
                observe(observation)
            except Exception as error:
                log.warning("notifier failed on an observation of %s: %s", observation.run_id, error)
        return _json({"status": "recorded", "run_id": observation.run_id, "task": observation.task})

    @app.post(f"/{API_VERSION}/sizing", dependencies=[Depends(authorize)], tags=["api"], response_model=SizingDecision)
    def post_sizing(request: SizingRequest) -> Response:
        """Choose the size of the next task attempt; the decision is stored with the run."""
        validate_request(request)
        decision = policy.decide(request, store.recent_history(request.pipeline, request.task))
        store.add_decision(request, decision)
        metrics.add(
            "headrace_control_room_decisions_total",
            help_text="Sizing decisions, by source and target",
            labels={"source": decision.source, "target": str(decision.target)},
        )
        return _json(to_dict(decision))

    @app.post(f"/{API_VERSION}/events", dependencies=[Depends(authorize)], tags=["api"], response_model=Recorded)
    def post_event(event: RunEvent) -> Response:
        """Store a run event and hand it to the notifier (Slack, Datadog); a run end that was
        already reported (by the watcher or the exit handler, whichever came first) is stored but
        not notified again."""
        validate_event(event)
        stored = store.add_event(event)
        metrics.add(
            "headrace_control_room_events_total", help_text="Run events, by kind", labels={"kind": str(event.kind)}
        )
        if notifier is not None and not stored.repeat:
            try:
                notifier(event)
            except Exception as error:
                metrics.add("headrace_control_room_notifier_failures_total", help_text="Notifier errors")
                log.warning("notifier failed on %s of %s: %s", event.kind, event.run_id, error)
        return _json(
            {"status": "recorded", "id": stored.id, "run_id": event.run_id, "task": event.task, "repeat": stored.repeat}
        )

    @app.post(f"/{API_VERSION}/notifications", dependencies=[Depends(authorize)], tags=["api"], response_model=Recorded)
    def post_notification(message: StepNotice) -> Response:
        """Queue a step's own Slack message (``ctx.notify``) in the outbox, which sends it exactly
        once; the same ``id`` again is harmless."""
        queue = getattr(notifier, "message", None)
        if queue is not None:
            queue(message.model_dump())
        return _json({"status": "queued", "run_id": message.run_id, "task": None})

    @app.get(f"/{API_VERSION}/runs", dependencies=[Depends(authorize)], tags=["api"])
    def get_runs(pipeline: str | None = None, limit: int = Query(50, ge=1, le=1000)) -> dict[str, list[dict[str, Any]]]:
        """Run summaries, newest first."""
        return {"runs": store.runs(pipeline, limit)}

    @app.get(f"/{API_VERSION}/runs/{{run_id}}", dependencies=[Depends(authorize)], tags=["api"])
    def get_run(run_id: str, pipeline: str | None = None) -> dict[str, Any]:
        """One run: its tasks, observations, decisions and events."""
        found = store.run(run_id, pipeline)
        if found is None:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} is unknown to the control room")
        return found

    @app.get(f"/{API_VERSION}/tasks/{{pipeline}}/{{task}}", dependencies=[Depends(authorize)], tags=["api"])
    def get_task(pipeline: str, task: str, limit: int = Query(100, ge=1, le=5000)) -> dict[str, Any]:
        """One task's history: observations (oldest first) and decisions (newest first)."""
        return {
            "pipeline": pipeline,
            "task": task,
            "observations": [to_dict(o) for o in store.history(pipeline, task, limit)],
            "decisions": store.decisions(pipeline, task, limit=limit),
        }

    @app.get("/openapi.json", dependencies=[Depends(authorize)], include_in_schema=False)
    def openapi_spec() -> JSONResponse:
        """The OpenAPI description of this API (behind the token like everything but health)."""
        return JSONResponse(app.openapi())

    @app.get("/metrics", dependencies=[Depends(authorize)], tags=["operations"])
    def get_metrics() -> PlainTextResponse:
        """Prometheus text exposition."""
        gauges = {
            "headrace_control_room_up": (1.0, "The service answers"),
            "headrace_control_room_uptime_seconds": (time.time() - started, "Seconds since start"),
            "headrace_control_room_observations_stored": (float(store.count_observations()), "Observation rows"),
        }
        text = metrics.render(gauges) + (collector.exposition() if collector is not None else "")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    def page(request: Request, token: str | None = None) -> Response:
        """The page: input sizes, chosen sizes and costs per task, and the last decisions."""
        if accepted.enabled:
            presented = token or request.cookies.get(TOKEN_COOKIE, "")
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                presented = header[7:].strip()
            if not accepted.accepts(presented):
                return HTMLResponse(
                    "<!doctype html><title>headrace control room</title>"
                    "<p>Sign in: open this page once as <code>/?token=&lt;token&gt;</code>.</p>",
                    status_code=401,
                )
        from control_room.page import render_page

        response = HTMLResponse(render_page(store, policy.catalog))
        if token and accepted.enabled:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {k: v for k, v in problem.items() if k in ("type", "loc", "msg", "input")} for problem in error.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in problem["loc"][1:]) or "body" for problem in problems)
        return JSONResponse(
            status_code=422, content=_jsonable({"detail": problems, "message": f"invalid field(s): {fields}"})
        )

    return app


class StepNotice(BaseModel):
    """A step's message for Slack (see ``steps.notices``): bounded to what the outbox stores."""

    id: str = PydanticField(min_length=1, max_length=300)
    pipeline: str = PydanticField(min_length=1, max_length=200)
    run_id: str = PydanticField(min_length=1, max_length=200)
    channel: str = PydanticField("", max_length=200)
    text: str = PydanticField(min_length=1, max_length=40_000)
    blocks: list[dict[str, Any]] = PydanticField(default_factory=list, max_length=50)


@dataclass(frozen=True)
class Recorded:
    """What a write answers: it is stored (and committed) under this run and task."""

    status: str
    run_id: str
    task: str | None = None
    id: int | None = None
    #: An event only: it repeats a run end already recorded, so it was not notified again.
    repeat: bool = False


def _json(content: dict[str, Any]) -> Response:
    """A JSON response built directly: FastAPI's response validation costs more than the work."""
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def app_from_environment() -> FastAPI:
    """The app as ``headrace control-room serve`` configures it, from settings alone.

    The factory uvicorn calls in each worker process (``--workers N``): every worker opens its own
    store and notifier from ``HEADRACE_*`` settings.
    """
    from control_room.catalog import load_catalog, load_rules
    from steps.settings import load_settings

    settings = load_settings()
    catalog = load_catalog(settings.control_room_catalog or None)
    policy = Policy(catalog, load_rules(settings.control_room_rules or None, catalog))
    store = Store.open(settings.control_room_db or None, settings.state_dir)
    tokens = Tokens(settings.control_room_token.split(","), settings.control_room_token_file or None)
    notifier: Notifier | None = None
    if os.environ.get("HEADRACE_CONTROL_ROOM_NOTIFY", "1") != "0":
        from control_room.notify import build_notifier

        notifier = build_notifier(settings, engine=store.engine, start=True)
    pauses = CollectorPauses()
    app = create_app(store, policy, tokens=tokens, notifier=notifier, threads=REQUEST_THREADS, collector=pauses)
    store.warm_pool(REQUEST_THREADS)  # no database connection is opened inside a request
    settle_heap()  # after the app is built: everything start-up made is frozen
    pauses.install()
    return app
