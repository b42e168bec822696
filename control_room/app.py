"""The control room service: a versioned JSON API (OpenAPI at ``/openapi.json``), metrics, a page.

``create_app(store, policy, tokens=..., notifier=...)`` builds the FastAPI app; ``headrace
control-room serve`` runs it under uvicorn. Endpoints are plain ``def`` functions: the store does
blocking database I/O, which FastAPI runs in its thread pool.

Bodies are the contract dataclasses of :mod:`steps.core.contract`, validated at the boundary by the
pydantic models of :mod:`control_room.bounds` (every bound of every field, from the column that
stores it): a value the database could not hold is a 422 naming the field, never a 500. Every
route but ``/healthz`` needs a bearer token when tokens are configured
(``HEADRACE_CONTROL_ROOM_TOKEN`` or the mounted Secret file ``HEADRACE_CONTROL_ROOM_TOKEN_FILE``,
re-read when it changes so a rotated Secret takes effect); the page also accepts ``?token=`` once
and keeps it in a cookie, because a browser cannot send a header from its address bar. The token
and the body's size are checked before the body is read (:class:`Gate`).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import AfterValidator, BaseModel
from pydantic import Field as PydanticField

from control_room.bounds import (
    NAME_LENGTHS,
    ObservationBody,
    RunEventBody,
    SizingRequestBody,
    bounded_text,
    clean_text,
    to_contract,
)
from control_room.heap import CollectorPauses, settle_heap
from control_room.metrics import CountRequests, Metrics
from control_room.sizing import Policy
from control_room.store import Store
from steps.core.contract import Notifier, Observation, RunEvent, SizingDecision, SizingRequest, to_dict
from steps.core.errors import ConfigError

log = logging.getLogger("headrace.control_room")

API_VERSION = "v1"
TOKEN_COOKIE = "headrace_token"
#: Threads answering requests in one worker process (see ``create_app``).
REQUEST_THREADS = 8
#: Largest request body accepted (``HEADRACE_CONTROL_ROOM_MAX_BODY_BYTES``): 1 MiB.
MAX_BODY_BYTES = 1024 * 1024


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
        """Constant-time comparison against every accepted token (tokens are ASCII)."""
        if not presented or not presented.isascii():
            return False
        candidate = presented.encode()
        matched = False
        for token in [*self.fixed, *self._from_file()]:
            matched |= hmac.compare_digest(candidate, token.encode())
        return matched


# ----------------------------------------------------------------------------- the gate


def _header(scope: Any, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _refuse(send: Any, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Gate:
    """Pure ASGI middleware that refuses a request before its body is read: a missing or wrong
    bearer token (401) and a body over ``max_body`` bytes (413, from ``Content-Length`` alone
    when it says so, else by counting at most ``max_body`` bytes as they arrive).

    The app behind gets the body replayed from memory, so nothing bigger than the limit is ever
    buffered. ``open_paths`` need no token here: health, and the page, which also takes its
    token from ``?token=`` or its cookie.
    """

    def __init__(self, app: Any, tokens: Tokens, max_body: int, open_paths: frozenset[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body
        self.open_paths = open_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tokens.enabled and scope["path"] not in self.open_paths:
            scheme, _, presented = _header(scope, b"authorization").partition(" ")
            if scheme.lower() != "bearer" or not self.tokens.accepts(presented.strip()):
                await _refuse(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
        length = _header(scope, b"content-length")
        too_big = f"request body over {self.max_body} bytes; send less (HEADRACE_CONTROL_ROOM_MAX_BODY_BYTES)"
        if length:
            if not length.isdigit():
                await _refuse(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.max_body:
                await _refuse(send, 413, too_big)
                return
            if int(length) == 0:
                await self.app(scope, receive, send)
                return
        elif not _header(scope, b"transfer-encoding"):
            await self.app(scope, receive, send)  # no body
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _refuse(send, 413, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


UNAUTHORIZED = "missing or wrong bearer token; send 'Authorization: Bearer <HEADRACE_CONTROL_ROOM_TOKEN>'"


@dataclass(frozen=True)
class Problem:
    """Why a request was refused, in one sentence."""

    detail: str


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of the refusals a route can answer with."""
    meaning = {
        400: "The body is not JSON text",
        401: "Missing or wrong bearer token",
        404: "Not known to the control room",
        413: "The body is over the size limit",
        503: "The database does not answer",
    }
    return {code: {"model": Problem, "description": meaning[code]} for code in codes}


# ----------------------------------------------------------------------------- the app


def create_app(
    store: Store,
    policy: Policy,
    *,
    tokens: Tokens | None = None,
    notifier: Notifier | None = None,
    threads: int = REQUEST_THREADS,
    collector: CollectorPauses | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The control room's ASGI app over ``store`` and ``policy``.

    ``notifier`` receives every stored :class:`RunEvent` (and, when it has an ``observe`` method,
    every observation); its failures are logged and counted, never returned to the caller.
    ``collector``, when given, adds the process's garbage-collection pauses to ``/metrics``.
    A request body over ``max_body_bytes`` is refused (413) before it is read.
    """
    accepted = tokens if tokens is not None else Tokens.from_environment()
    started = time.time()

    def gauges() -> dict[str, tuple[float, str]]:
        return {
            "headrace_control_room_up": (1.0, "The service answers"),
            "headrace_control_room_uptime_seconds": (time.time() - started, "Seconds since this worker started"),
            "headrace_control_room_observations_stored": (float(store.count_observations()), "Observation rows"),
        }

    metrics = Metrics(gauges)

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
    app.add_middleware(Gate, tokens=accepted, max_body=max_body_bytes, open_paths=frozenset({"/healthz", "/"}))
    app.add_middleware(CountRequests, metrics=metrics)
    guarded = _responses(401)
    writes = _responses(400, 401, 413)

    @app.get("/healthz", tags=["operations"], responses=_responses(503))
    def healthz() -> dict[str, Any]:
        """Liveness and readiness: the database answers."""
        try:
            store.ping()
        except Exception as error:
            raise HTTPException(status_code=503, detail=f"database unreachable: {type(error).__name__}") from error
        return {"status": "ok", "schema_version": store.version}

    @app.post(f"/{API_VERSION}/observations", tags=["api"], response_model=Recorded, responses=writes)
    def post_observation(body: ObservationBody) -> Response:  # type: ignore[valid-type]
        """Record what a task attempt did; sending the same (run, task, attempt) again is harmless."""
        observation: Observation = to_contract(Observation, body)
        store.add_observation(observation)
        metrics.observations.labels(str(observation.outcome)).inc()
        observe = getattr(notifier, "observe", None)
        if callable(observe):
            try:
                observe(observation)
            except Exception as error:
                log.warning("notifier failed on an observation of %s: %s", observation.run_id, error)
        return _json({"status": "recorded", "run_id": observation.run_id, "task": observation.task})

    @app.post(f"/{API_VERSION}/sizing", tags=["api"], response_model=SizingDecision, responses=writes)
    def post_sizing(body: SizingRequestBody) -> Response:  # type: ignore[valid-type]
        """Choose the size of the next task attempt; the decision is stored with the run."""
        request: SizingRequest = to_contract(SizingRequest, body)
        decision = policy.decide(
            request,
            store.recent_history(request.pipeline, request.task, recheck=request.attempt > 1),
            related=lambda: store.pipeline_history(request.pipeline),
        )
        store.add_decision(request, decision)
        metrics.decisions.labels(decision.source, str(decision.target)).inc()
        return _json(to_dict(decision))

    @app.post(f"/{API_VERSION}/events", tags=["api"], response_model=Recorded, responses=writes)
    def post_event(body: RunEventBody) -> Response:  # type: ignore[valid-type]
        """Store a run event and hand it to the notifier (Slack, Datadog). An event whose
        ``event_id`` is stored already (a retry) is not stored or notified again; a run end that
        was already reported (by the watcher or the exit handler, whichever came first) is stored
        but not notified again. Both answer ``repeat: true``."""
        event: RunEvent = to_contract(RunEvent, body)
        stored = store.add_event(event)
        metrics.events.labels(str(event.kind)).inc()
        if notifier is not None and not stored.repeat:
            try:
                notifier(event)
            except Exception as error:
                metrics.notifier_failures.inc()
                log.warning("notifier failed on %s of %s: %s", event.kind, event.run_id, error)
        return _json(
            {"status": "recorded", "id": stored.id, "run_id": event.run_id, "task": event.task, "repeat": stored.repeat}
        )

    @app.post(f"/{API_VERSION}/notifications", tags=["api"], response_model=Recorded, responses=writes)
    def post_notification(message: StepNotice) -> Response:
        """Queue a step's own Slack message (``ctx.notify``) in the outbox, which sends it exactly
        once; the same ``id`` again is harmless."""
        queue = getattr(notifier, "message", None)
        if queue is not None:
            queue(message.model_dump())
        return _json({"status": "queued", "run_id": message.run_id, "task": None})

    @app.get(f"/{API_VERSION}/runs", tags=["api"], responses=guarded)
    def get_runs(
        pipeline: PipelineName | None = None, limit: int = Query(50, ge=1, le=1000)
    ) -> dict[str, list[dict[str, Any]]]:
        """Run summaries, newest first."""
        return {"runs": store.runs(pipeline, limit)}

    @app.get(f"/{API_VERSION}/runs/{{run_id}}", tags=["api"], responses=_responses(401, 404))
    def get_run(run_id: RunId, pipeline: PipelineName | None = None) -> dict[str, Any]:
        """One run: its tasks, observations, decisions and events."""
        found = store.run(run_id, pipeline)
        if found is None:
            raise HTTPException(status_code=404, detail=f"run {run_id!r} is unknown to the control room")
        return found

    @app.get(f"/{API_VERSION}/tasks/{{pipeline}}/{{task}}", tags=["api"], responses=guarded)
    def get_task(pipeline: PipelinePath, task: TaskPath, limit: int = Query(100, ge=1, le=5000)) -> dict[str, Any]:
        """One task's history: observations (oldest first) and decisions (newest first)."""
        return {
            "pipeline": pipeline,
            "task": task,
            "observations": [to_dict(o) for o in store.history(pipeline, task, limit)],
            "decisions": store.decisions(pipeline, task, limit=limit),
        }

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_spec() -> JSONResponse:
        """The OpenAPI description of this API (behind the token like everything but health)."""
        return JSONResponse(app.openapi())

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses={**guarded, 200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def get_metrics() -> PlainTextResponse:
        """Prometheus text exposition, summed over every worker process."""
        text = metrics.render() + (collector.exposition() if collector is not None else "")
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get(
        "/",
        response_class=HTMLResponse,
        tags=["page"],
        responses={401: {"description": "Not signed in", "content": {"text/html": {"schema": {"type": "string"}}}}},
    )
    def page(
        request: Request,
        token: str | None = None,
        pipeline: str | None = None,
        task: str | None = None,
        run: str | None = None,
    ) -> Response:
        """The page: input sizes, chosen sizes and costs per task, and the last decisions; only
        one pipeline, task or run when asked (``?pipeline=&task=&run=``)."""
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

        response = HTMLResponse(
            render_page(store, policy.catalog, pipeline=pipeline or None, task=task or None, run=run or None)
        )
        if token and accepted.enabled and accepted.accepts(token):  # only a token that signs in is kept
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


PipelineName = Annotated[str, Query(min_length=1, max_length=NAME_LENGTHS["pipeline"]), AfterValidator(clean_text)]
PipelinePath = Annotated[
    str, FastAPIPath(min_length=1, max_length=NAME_LENGTHS["pipeline"]), AfterValidator(clean_text)
]
TaskPath = Annotated[str, FastAPIPath(min_length=1, max_length=NAME_LENGTHS["task"]), AfterValidator(clean_text)]
RunId = Annotated[str, FastAPIPath(min_length=1, max_length=NAME_LENGTHS["run_id"]), AfterValidator(clean_text)]


class StepNotice(BaseModel):
    """A step's message for Slack (see ``steps.runtime.notices``): bounded to what the outbox stores."""

    id: bounded_text(name=True, min_length=1, max_length=300)  # type: ignore[valid-type]
    pipeline: bounded_text(name=True, min_length=1, max_length=NAME_LENGTHS["pipeline"])  # type: ignore[valid-type]
    run_id: bounded_text(name=True, min_length=1, max_length=NAME_LENGTHS["run_id"])  # type: ignore[valid-type]
    channel: bounded_text(max_length=200) = ""  # type: ignore[valid-type]
    text: bounded_text(min_length=1, max_length=40_000)  # type: ignore[valid-type]
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
    """``value`` as JSON can carry it: what a 422 echoes back may be NaN or a lone surrogate."""
    if isinstance(value, dict):
        return {_jsonable(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, int | float | bool):
        return value
    return str(value)


def max_body_bytes(setting: int) -> int:
    """The body limit ``control_room_max_body_bytes`` asks for (at least one byte)."""
    if setting < 1:
        raise ConfigError(
            f"HEADRACE_CONTROL_ROOM_MAX_BODY_BYTES={setting!r}: must be a whole number of bytes >= 1, e.g. 1048576"
        )
    return setting


def app_from_environment() -> FastAPI:
    """The app as ``headrace control-room serve`` configures it, from settings alone.

    The factory uvicorn calls in each worker process (``--workers N``): every worker opens its own
    store and notifier from ``HEADRACE_*`` settings.
    """
    from control_room.catalog import load_catalog, load_rules
    from steps.core.settings import load_settings

    settings = load_settings()
    catalog = load_catalog(settings.control_room_catalog or None)
    policy = Policy(catalog, load_rules(settings.control_room_rules or None, catalog))
    store = Store.open(settings.control_room_db or None, settings.state_dir)
    tokens = Tokens(settings.control_room_token.split(","), settings.control_room_token_file or None)
    notifier: Notifier | None = None
    if settings.control_room_notify:
        from control_room.notifications.notifier import build_notifier

        notifier = build_notifier(settings, engine=store.engine, start=True)
    pauses = CollectorPauses()
    app = create_app(
        store,
        policy,
        tokens=tokens,
        notifier=notifier,
        threads=REQUEST_THREADS,
        collector=pauses,
        max_body_bytes=max_body_bytes(settings.control_room_max_body_bytes),
    )
    store.warm_pool(REQUEST_THREADS)  # no database connection is opened inside a request
    settle_heap()  # after the app is built: everything start-up made is frozen
    pauses.install()
    return app
