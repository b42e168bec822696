"""The control room's memory: observations, sizing decisions, run summaries and run events.

SQLAlchemy 2 Core over the tables of :mod:`control_room.schema` (which also holds the migrations).
SQLite by default (``<state_dir>/control-room.db`` in WAL mode: readers never block the writer and
a killed process loses nothing that was committed), PostgreSQL by URL
(``postgresql+psycopg://user@host/db``).

Every write is idempotent where the API promises it: observations on
``(pipeline, run_id, task, attempt)``, decisions on the same key (a retried sizing call replaces
the earlier answer). Writes commit before returning, so a 2xx from the API means the row is on disk.
On PostgreSQL an observation or a decision and its run's touch go as one autocommit statement
(one round trip); on SQLite they share one serialised transaction.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from control_room.schema import (
    decisions,
    events,
    migrate,
    observations,
    runs,
    task_states,
)
from control_room.statements import (
    ATTEMPT_KEY,
    attempt_row_and_run_statement,
    cached,
    event_once_statement,
    run_touch_statement,
    upsert,
)
from steps.core.contract import (
    EventKind,
    Observation,
    Outcome,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
    to_dict,
)
from steps.core.errors import ConfigError

DB_FILE = "control-room.db"
#: Observations a sizing decision reads: the policy's fits use the newest 60 successful runs;
#: the rest is for OOM floors.
HISTORY_LIMIT = 200
#: How long a replica trusts its cached history of a task before checking for others' writes.
HISTORY_RECHECK_SECONDS = 1.0


def database_url(url: str | None = None, state_dir: str | Path = ".headrace") -> str:
    """The database URL: ``url`` when given, else the SQLite file in the state folder."""
    if url:
        return url
    path = Path(state_dir).resolve() / DB_FILE
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process in WAL mode
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def masked(url: str) -> str:
    """``url`` with its password hidden, also when it is too malformed to parse."""
    return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite files get WAL mode and their folder created)."""
    try:
        parsed = make_url(url)
    except Exception as error:
        raise ConfigError(
            f"control room database {masked(url)!r} is not a database URL; use sqlite:///path.db or postgresql+psycopg://user@host/db"
        ) from None if "@" in url else error
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pre-ping (a round trip per checkout); recycle instead, and reconnect on the next call.
    try:
        return create_engine(url, pool_recycle=1800, pool_size=10, max_overflow=20)
    except ArgumentError:  # an unknown dialect or driver
        raise ConfigError(
            f"control room database {masked(url)!r}: {parsed.drivername} is not supported; use sqlite:///path.db or postgresql+psycopg://user@host/db"
        ) from None


_RUN_STATUS = {
    EventKind.RUN_STARTED: "running",
    EventKind.RUN_SUCCEEDED: "succeeded",
    EventKind.RUN_FAILED: "failed",
    EventKind.RUN_CANCELLED: "cancelled",
}
_TASK_STATUS = {
    EventKind.TASK_STARTED: "running",
    EventKind.TASK_SUCCEEDED: "succeeded",
    EventKind.TASK_FAILED: "failed",
    EventKind.TASK_RETRYING: "retrying",
}


def observation_from_row(row: Any) -> Observation:
    m = row._mapping
    return Observation(
        pipeline=m["pipeline"],
        task=m["task"],
        run_id=m["run_id"],
        attempt=m["attempt"],
        outcome=Outcome(m["outcome"]),
        input_bytes=m["input_bytes"],
        input_rows=m["input_rows"],
        output_bytes=m["output_bytes"],
        output_rows=m["output_rows"],
        target=SizingTarget(m["target"]),
        instance_type=m["instance_type"],
        instance_count=m["instance_count"],
        cpu=m["cpu"],
        memory=m["memory"],
        duration_seconds=m["duration_seconds"],
        peak_memory_bytes=m["peak_memory_bytes"],
        cost_usd=m["cost_usd"],
        reason=m["reason"],
    )


def _row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


class StoredEvent(NamedTuple):
    """An event as stored: its id, and whether it repeats a run end already recorded."""

    id: int
    repeat: bool = False


class Store:
    """All reads and writes of the control room; thread-safe (one engine, short transactions)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache_lock = threading.Lock()
        # SQLite allows one writer; queueing writers here beats SQLite's busy handler, which
        # sleeps up to 100 ms between retries and turns contention into long tails.
        self._write_lock: threading.Lock | None = threading.Lock() if engine.dialect.name == "sqlite" else None
        self._history_cache: dict[tuple[str, str, int], tuple[float, tuple[Any, ...], list[Observation]]] = {}
        # Single-statement writes commit on their own: no BEGIN and COMMIT round trips.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.version = migrate(engine)

    @classmethod
    def open(cls, url: str | None = None, state_dir: str | Path = ".headrace") -> Store:
        """Open (creating and migrating) the database at ``url`` or the state folder's SQLite file."""
        return cls(make_engine(database_url(url, state_dir)))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def warm_pool(self, connections: int) -> int:
        """Open ``connections`` database connections now and return them to the pool.

        A connection opened under load costs a PostgreSQL backend start (fork, authentication,
        catalog caches) inside some request, at the moment requests pile up. The service opens as
        many as it has request threads before it takes traffic. Returns how many the pool holds
        (SQLite: nothing to warm, 0).
        """
        if self.engine.dialect.name == "sqlite" or connections < 1:
            return 0
        opened = [self.engine.connect() for _ in range(connections)]
        for conn in opened:
            conn.execute(text("SELECT 1"))
        for conn in opened:
            conn.close()
        return int(self.engine.pool.checkedin())  # type: ignore[attr-defined]

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction (serialised in-process on SQLite), committed on exit."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    # ------------------------------------------------------------------ writes

    def add_observation(self, observation: Observation) -> None:
        """Record one attempt's result; the same (pipeline, run, task, attempt) twice keeps one row."""
        now = time.time()
        values = to_dict(observation)
        values["recorded_at"] = now
        self._write_attempt_row(observations, values, "recorded_at")
        self._forget_history(observation.pipeline, observation.task)

    def add_decision(self, request: SizingRequest, decision: SizingDecision) -> None:
        """Store a sizing decision with the request it answered, under the run it belongs to."""
        now = time.time()
        values = {
            "pipeline": request.pipeline,
            "task": request.task,
            "run_id": request.run_id,
            "attempt": request.attempt,
            "target": str(decision.target),
            "input_bytes": request.input_bytes,
            "instance_type": decision.instance_type,
            "instance_count": decision.instance_count,
            "cpu": decision.cpu,
            "memory": decision.memory,
            "predicted_duration_seconds": decision.predicted_duration_seconds,
            "predicted_peak_memory_bytes": decision.predicted_peak_memory_bytes,
            "predicted_cost_usd": decision.predicted_cost_usd,
            "source": decision.source,
            "reason": decision.reason,
            "request": to_dict(request),
            "decided_at": now,
        }
        self._write_attempt_row(decisions, values, "decided_at")

    def _write_attempt_row(self, table: Table, values: dict[str, Any], stamp: str) -> None:
        """Upsert one attempt's row of ``table`` and touch its run, committed before returning."""
        if self.engine.dialect.name == "postgresql":
            columns = tuple(sorted(values))
            statement = cached(
                ("postgresql", table.name, "with-run", columns),
                lambda: attempt_row_and_run_statement(table, columns, stamp),
            )
            with self._autocommit.connect() as conn:
                conn.execute(statement, values)
            return
        with self.transaction() as conn:
            upsert(conn, table, values, ATTEMPT_KEY)
            self._touch_run(conn, values["pipeline"], values["run_id"], values[stamp])

    def add_event(self, run_event: RunEvent) -> StoredEvent:
        """Append a run event and fold it into the run and task summaries.

        A run's end reported again with the status the run already has (the exit handler and the
        watcher both report it) is stored in the event log but marked ``repeat``: callers notify
        and count it once. A run that started again (an Argo retry) and ends again is no repeat.
        """
        now = time.time()
        repeat = False
        at = run_event.at or now
        with self.transaction() as conn:
            dialect = conn.dialect.name
            statement = cached((dialect, "event-once"), lambda: event_once_statement(dialect))
            event_id = conn.execute(
                statement,
                {
                    "pipeline": run_event.pipeline,
                    "run_id": run_event.run_id,
                    "task": run_event.task,
                    "attempt": run_event.attempt,
                    "kind": str(run_event.kind),
                    "at": at,
                    "payload": to_dict(run_event),
                    "received_at": now,
                    "event_id": run_event.event_id,
                },
            ).scalar()
            if event_id is None:  # this sender's event is stored already: a retry
                stored = conn.execute(
                    select(events.c.id).where(
                        events.c.pipeline == run_event.pipeline,
                        events.c.run_id == run_event.run_id,
                        events.c.event_id == run_event.event_id,
                    )
                ).scalar_one()
                return StoredEvent(int(stored), repeat=True)
            self._touch_run(conn, run_event.pipeline, run_event.run_id, at, url=run_event.url)
            kind = EventKind(run_event.kind)
            if kind in _RUN_STATUS:
                status = _RUN_STATUS[kind]
                changes: dict[str, Any] = {"status": status, "updated_at": at}
                update = runs.update().where(runs.c.pipeline == run_event.pipeline, runs.c.run_id == run_event.run_id)
                if kind is not EventKind.RUN_STARTED:
                    changes["finished_at"] = at
                    # Row-locked compare: of two reports racing, exactly one changes the status.
                    update = update.where(runs.c.status != status)
                changed = conn.execute(update.values(**changes)).rowcount
                repeat = kind is not EventKind.RUN_STARTED and changed == 0
            if kind in _TASK_STATUS and run_event.task:
                upsert(
                    conn,
                    task_states,
                    {
                        "pipeline": run_event.pipeline,
                        "run_id": run_event.run_id,
                        "task": run_event.task,
                        "status": _TASK_STATUS[kind],
                        "attempt": run_event.attempt or 1,
                        "updated_at": at,
                        "reason": run_event.reason,
                    },
                    ("pipeline", "run_id", "task"),
                )
        return StoredEvent(event_id, repeat)

    def _touch_run(self, conn: Connection, pipeline: str, run_id: str, at: float, url: str | None = None) -> None:
        values: dict[str, Any] = {
            "pipeline": pipeline,
            "run_id": run_id,
            "status": "running",
            "started_at": at,
            "updated_at": at,
            "url": url,
        }
        dialect = conn.dialect.name
        statement = cached((dialect, "runs-touch", bool(url)), lambda: run_touch_statement(dialect, bool(url)))
        conn.execute(statement, values)

    # ------------------------------------------------------------------ reads

    def history(self, pipeline: str, task: str, limit: int = 500) -> list[Observation]:
        """The newest ``limit`` observations of one task, oldest first (what the policy learns from)."""
        query = (
            select(observations)
            .where(observations.c.pipeline == pipeline, observations.c.task == task)
            .order_by(observations.c.recorded_at.desc(), observations.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [observation_from_row(r) for r in reversed(rows)]

    def pipeline_history(self, pipeline: str, limit: int = HISTORY_LIMIT) -> list[Observation]:
        """The newest ``limit`` observations of every task of ``pipeline``, oldest first: what a
        task with no history of its own borrows a prior from."""
        query = (
            select(observations)
            .where(observations.c.pipeline == pipeline)
            .order_by(observations.c.recorded_at.desc(), observations.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [observation_from_row(r) for r in reversed(rows)]

    def recent_history(
        self, pipeline: str, task: str, limit: int = HISTORY_LIMIT, *, recheck: bool = False
    ) -> list[Observation]:
        """:meth:`history`, served from memory while the task's observations are unchanged.

        This process's own writes drop the task's entry at once. Other replicas' writes are seen
        within :data:`HISTORY_RECHECK_SECONDS`: after that, one indexed query (count and newest
        ``recorded_at``) decides whether the full read is needed. Sizing a task from history a
        second old changes nothing (its next run is minutes away); a query per decision did.
        ``recheck`` skips that second of trust: a retry is sized right after its attempt failed,
        and the watcher (another process) may have recorded the OOM that caused it a moment ago.
        """
        key = (pipeline, task, limit)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._history_cache.get(key)
        if cached is not None and not recheck and now - cached[0] < HISTORY_RECHECK_SECONDS:
            return cached[2]
        with self.engine.connect() as conn:
            stamp = tuple(
                conn.execute(
                    select(func.count(), func.max(observations.c.recorded_at)).where(
                        observations.c.pipeline == pipeline, observations.c.task == task
                    )
                ).one()
            )
        history = cached[2] if cached is not None and cached[1] == stamp else self.history(pipeline, task, limit)
        with self._cache_lock:
            if len(self._history_cache) > 1000:
                self._history_cache.clear()
            self._history_cache[key] = (now, stamp, history)
        return history

    def _forget_history(self, pipeline: str, task: str) -> None:
        with self._cache_lock:
            for key in [k for k in self._history_cache if k[0] == pipeline and k[1] == task]:
                del self._history_cache[key]

    def observations_of_run(self, pipeline: str, run_id: str) -> list[dict[str, Any]]:
        query = (
            select(observations)
            .where(observations.c.pipeline == pipeline, observations.c.run_id == run_id)
            .order_by(observations.c.id)
        )
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    def count_observations(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(observations)).scalar() or 0)

    def decisions(
        self, pipeline: str | None = None, task: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Decisions, newest first, optionally for one pipeline, task or run."""
        query = select(decisions).order_by(decisions.c.decided_at.desc(), decisions.c.id.desc()).limit(limit)
        if pipeline:
            query = query.where(decisions.c.pipeline == pipeline)
        if task:
            query = query.where(decisions.c.task == task)
        if run_id:
            query = query.where(decisions.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    def started_by(self, run_ids: list[str]) -> dict[str, str]:
        """What started each of ``run_ids`` (the reason of its start event: ``"started by amqp
        queue recipes.ready, message 42"``); runs started by hand or by cron are absent."""
        if not run_ids:
            return {}
        query = select(events.c.run_id, events.c.payload).where(
            events.c.kind == str(EventKind.RUN_STARTED), events.c.run_id.in_(set(run_ids))
        )
        with self.engine.connect() as conn:
            found = {r.run_id: str((r.payload or {}).get("reason") or "") for r in conn.execute(query)}
        return {run_id: reason for run_id, reason in found.items() if reason.startswith("started by ")}

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Run summaries, newest first."""
        query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            return [_row_dict(r) for r in conn.execute(query)]

    def run(self, run_id: str, pipeline: str | None = None) -> dict[str, Any] | None:
        """One run with its tasks, observations, decisions and events; None when unknown."""
        query = select(runs).where(runs.c.run_id == run_id)
        if pipeline:
            query = query.where(runs.c.pipeline == pipeline)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(runs.c.started_at.desc())).first()
            if row is None:
                return None
            summary = _row_dict(row)
            summary["tasks"] = [
                _row_dict(r)
                for r in conn.execute(
                    select(task_states)
                    .where(task_states.c.pipeline == summary["pipeline"], task_states.c.run_id == run_id)
                    .order_by(task_states.c.updated_at)
                )
            ]
            summary["events"] = [
                {**_row_dict(r)["payload"], "id": r.id}
                for r in conn.execute(
                    select(events)
                    .where(events.c.pipeline == summary["pipeline"], events.c.run_id == run_id)
                    .order_by(events.c.id)
                )
            ]
        summary["observations"] = self.observations_of_run(summary["pipeline"], run_id)
        summary["decisions"] = list(reversed(self.decisions(pipeline=summary["pipeline"], run_id=run_id, limit=1000)))
        return summary

    def task_series(self, limit_per_task: int = 60) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Per (pipeline, task): its recent decisions joined with the observed outcome, oldest first.

        What the page charts: input size over runs, the chosen size and its cost.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(select(decisions).order_by(decisions.c.decided_at, decisions.c.id)).all()
            outcomes = {
                (r.pipeline, r.run_id, r.task, r.attempt): (
                    r.outcome,
                    r.cost_usd,
                    r.peak_memory_bytes,
                    r.duration_seconds,
                )
                for r in conn.execute(
                    select(
                        observations.c.pipeline,
                        observations.c.run_id,
                        observations.c.task,
                        observations.c.attempt,
                        observations.c.outcome,
                        observations.c.cost_usd,
                        observations.c.peak_memory_bytes,
                        observations.c.duration_seconds,
                    )
                )
            }
        series: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            item = _row_dict(row)
            outcome = outcomes.get((row.pipeline, row.run_id, row.task, row.attempt))
            item["outcome"] = outcome[0] if outcome else None
            item["cost_usd"] = outcome[1] if outcome else None
            item["peak_memory_bytes"] = outcome[2] if outcome else None
            item["duration_seconds"] = outcome[3] if outcome else None
            series.setdefault((row.pipeline, row.task), []).append(item)
        return {key: items[-limit_per_task:] for key, items in series.items()}

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


def open_checked(url: str | None = None, state_dir: str | Path = ".headrace") -> Store:
    """:meth:`Store.open`, a database that cannot be reached or opened said in one line
    (:class:`ConfigError`) naming it, password hidden, and what to do."""
    from sqlalchemy.exc import DBAPIError

    where = database_url(url, state_dir)
    try:
        return Store.open(url, state_dir)
    except DBAPIError as error:
        reason = (
            str(error.orig or error).strip().splitlines()[0]
            if str(error.orig or error).strip()
            else type(error).__name__
        )
        raise ConfigError(
            f"control room database {masked(where)}: cannot open it ({reason}); start it or fix --db / HEADRACE_CONTROL_ROOM_DB"
        ) from None
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"control room database {masked(where)}: its driver {error.name} is not installed; pip install 'headrace[postgres]'"
        ) from None
