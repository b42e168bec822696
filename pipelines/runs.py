"""Run records: every local run, task attempt and output, in SQLite under the state folder.

The local runner writes a row before an attempt starts and updates it when the attempt ends, in
WAL mode with each write committed at once, so a task or the runner being killed loses nothing that
already happened: ``headrace resume`` reads these rows to rerun only what did not succeed.
Other parts of headrace (backfill, ``headrace runs``) read runs through :class:`RunStore`'s query
methods; they never touch the tables directly.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steps.core.contract import ArtifactRef
from steps.core.errors import UserError
from steps.core.settings import Settings

RUN_STATUSES = ("running", "succeeded", "failed", "cancelled")
#: Task states: pending (not started yet), running, retrying (waiting out its backoff), succeeded,
#: failed, upstream-failed (a task it waits for failed), cancelled (Ctrl-C), not-run.
TASK_STATUSES = ("pending", "running", "retrying", "succeeded", "failed", "upstream-failed", "cancelled", "not-run")

#: The run records' schema, one migration per version (SQLite's ``user_version``), applied in order,
#: each in one transaction with its version bump. Version 1 is the schema of every file written
#: before versions existed (its tables were made with ``IF NOT EXISTS``, so such a file, at
#: ``user_version`` 0, is brought up by the same steps). Append a migration to change the schema;
#: never edit one that shipped.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "runs, tasks, attempts, outputs",
        """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    spec TEXT NOT NULL,
    cwd TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL,
    run_date TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    pid INTEGER,
    mode TEXT NOT NULL DEFAULT 'subprocess'
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, run_date, status);
CREATE TABLE IF NOT EXISTS tasks (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, task)
);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    duration REAL,
    exit_code INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    log_path TEXT NOT NULL DEFAULT '',
    sizing TEXT,
    records TEXT,
    peak_memory_bytes INTEGER,
    PRIMARY KEY (run_id, task, attempt)
);
CREATE TABLE IF NOT EXISTS outputs (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    output TEXT NOT NULL,
    uri TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    rows INTEGER,
    format TEXT NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (run_id, task, output)
);
""",
    ),
    (
        2,
        "run_triggers: the message that started a run (event triggers)",
        """
CREATE TABLE IF NOT EXISTS run_triggers (
    run_id TEXT PRIMARY KEY,
    trigger TEXT NOT NULL,
    source TEXT NOT NULL,
    message_id TEXT NOT NULL,
    received REAL NOT NULL,
    UNIQUE (source, message_id)
);
""",
    ),
)


def new_run_id(pipeline: str, now: dt.datetime | None = None) -> str:
    """``<pipeline>-<yyyymmdd-hhmmss>-<4 hex>``: sortable, unique enough, a valid DNS label part."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{pipeline}-{moment.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists (the runner of a run marked running)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


#: The file in a run's folder (``<state>/runs/<run id>/``) its runner holds locked.
RUNNER_LOCK = "runner.lock"


class RunLocked(UserError):
    """Another runner (``run`` or ``resume``) holds the run; running it twice would run its
    tasks twice, at once, on the same artifact paths."""


class RunLock:
    """One runner per run: an exclusive ``flock`` on a file in the run's folder.

    The kernel drops the lock when the holder's file is closed, which happens when the holder
    exits or is killed (SIGKILL included), so a dead runner never blocks a ``resume``. The
    descriptor is not inherited by task processes (Python opens files non-inheritable and every
    child is started through ``exec``), so a task that outlives its runner does not keep the
    lock either. The file holds who took it (pid, host, start time) for the refusal message.
    """

    def __init__(self, state_path: str | Path, run_id: str) -> None:
        self.path = Path(state_path) / "runs" / run_id / RUNNER_LOCK
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock now or raise :class:`RunLocked` naming the holder; never waits."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLocked(f"run {self.run_id}: {_holder_text(holder)}; wait for it or stop it first") from None
        except BaseException:
            os.close(fd)
            raise
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (closing the file drops it); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _read_holder(fd: int, seconds: float = 2.0) -> str:
    """What the holder wrote into the lock file; it writes just after it takes the lock, so a
    lock taken an instant ago may still be empty for a moment."""
    deadline = time.monotonic() + seconds
    while True:
        raw = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        if raw.strip() or time.monotonic() > deadline:
            return raw
        time.sleep(0.02)


def _holder_text(raw: str) -> str:
    try:
        holder = json.loads(raw)
        started = dt.datetime.fromtimestamp(float(holder["started"]), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"another runner holds it (pid {int(holder['pid'])} on {holder['host']}, since {started})"
    except (ValueError, KeyError, TypeError):  # taken an instant ago, holder not written yet
        return "another runner holds it"


@dataclass(frozen=True)
class RunRecord:
    id: str
    pipeline: str
    spec: str
    cwd: str
    params: dict[str, str]
    status: str
    started: float
    finished: float | None
    pid: int | None
    mode: str = "subprocess"

    @property
    def run_date(self) -> str:
        return self.params.get("run_date", "")

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started

    @property
    def runner_alive(self) -> bool:
        return self.status == "running" and pid_alive(self.pid)


@dataclass(frozen=True)
class TaskRecord:
    run_id: str
    task: str
    status: str
    attempts: int
    reason: str


@dataclass(frozen=True)
class AttemptRecord:
    run_id: str
    task: str
    attempt: int
    status: str
    started: float
    finished: float | None
    duration: float | None
    exit_code: int | None
    reason: str
    log_path: str
    sizing: dict[str, Any] | None
    records: dict[str, Any] = field(default_factory=dict)
    peak_memory_bytes: int | None = None


@dataclass(frozen=True)
class OutputRecord:
    run_id: str
    task: str
    output: str
    ref: ArtifactRef

    @property
    def uri(self) -> str:
        return self.ref.uri

    @property
    def bytes(self) -> int:
        return self.ref.bytes

    @property
    def rows(self) -> int | None:
        return self.ref.rows


class RunStore:
    """The run records database. Safe to share between threads of one process; several
    processes (a runner and ``headrace runs list``) may use the same file at once (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.version = self._migrate()

    def _migrate(self) -> int:
        """Bring the file to the newest schema; returns its version. Cheap when it is there already
        (one pragma read); safe when several processes open the same file at once."""
        newest = MIGRATIONS[-1][0]
        current = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if current > newest:
            raise UserError(
                f"{self.path}: run records of a newer headrace (schema {current}; this one knows {newest}); "
                "upgrade headrace or set HEADRACE_STATE_DIR to another folder"
            )
        for version, _description, ddl in MIGRATIONS:
            if version <= current:
                continue
            with self._write() as db:
                if int(db.execute("PRAGMA user_version").fetchone()[0]) >= version:
                    continue  # another process applied it while this one waited for the lock
                for statement in ddl.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={version}")
            current = version
        return current

    @classmethod
    def for_settings(cls, settings: Settings) -> RunStore:
        return cls(settings.state_path / "runs.db")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # -- writing (the runner)

    def create_run(
        self,
        run_id: str,
        *,
        pipeline: str,
        spec: str,
        params: Mapping[str, str],
        tasks: list[str],
        cwd: str = "",
        mode: str = "subprocess",
    ) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (id, pipeline, spec, cwd, params, run_date, status, started, pid, mode)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    run_id,
                    pipeline,
                    spec,
                    cwd,
                    json.dumps(dict(params)),
                    params.get("run_date", ""),
                    now,
                    os.getpid(),
                    mode,
                ),
            )
            db.executemany(
                "INSERT INTO tasks (run_id, task, status) VALUES (?, ?, 'pending')", [(run_id, t) for t in tasks]
            )

    def reopen_run(self, run_id: str, params: Mapping[str, str], tasks: list[str]) -> None:
        """Mark a run running again for ``resume``: this process is now its runner. Attempts
        still marked running lost their runner: they become ``lost``."""
        with self._write() as db:
            db.execute(
                "UPDATE attempts SET status='lost', reason='the runner stopped before this attempt ended'"
                " WHERE run_id=? AND status='running'",
                (run_id,),
            )
            db.execute(
                "UPDATE runs SET status='running', finished=NULL, pid=?, params=?, run_date=? WHERE id=?",
                (os.getpid(), json.dumps(dict(params)), params.get("run_date", ""), run_id),
            )
            db.executemany(
                "INSERT OR IGNORE INTO tasks (run_id, task, status) VALUES (?, ?, 'pending')",
                [(run_id, t) for t in tasks],
            )

    def delete_run(self, run_id: str) -> None:
        """Forget a run: its record, tasks, attempts and outputs (the files are the caller's)."""
        with self._write() as db:
            for table in ("outputs", "attempts", "tasks"):
                db.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def finish_run(self, run_id: str, status: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status=?, finished=? WHERE id=?", (status, time.time(), run_id))

    def set_task(self, run_id: str, task: str, status: str, *, attempts: int | None = None, reason: str = "") -> None:
        with self._write() as db:
            if attempts is None:
                db.execute(
                    "UPDATE tasks SET status=?, reason=? WHERE run_id=? AND task=?", (status, reason, run_id, task)
                )
            else:
                db.execute(
                    "UPDATE tasks SET status=?, reason=?, attempts=? WHERE run_id=? AND task=?",
                    (status, reason, attempts, run_id, task),
                )

    def start_attempt(
        self, run_id: str, task: str, attempt: int, *, log_path: str, sizing: Mapping[str, Any] | None
    ) -> float:
        started = time.time()
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO attempts (run_id, task, attempt, status, started, log_path, sizing)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?)",
                (run_id, task, attempt, started, log_path, json.dumps(dict(sizing)) if sizing else None),
            )
            db.execute(
                "UPDATE tasks SET status='running', attempts=?, reason='' WHERE run_id=? AND task=?",
                (attempt, run_id, task),
            )
        return started

    def finish_attempt(
        self,
        run_id: str,
        task: str,
        attempt: int,
        *,
        status: str,
        duration: float,
        exit_code: int | None,
        reason: str = "",
        records: Mapping[str, Any] | None = None,
        peak_memory_bytes: int | None = None,
        outputs: Mapping[str, ArtifactRef] | None = None,
    ) -> None:
        """Close one attempt; a succeeded attempt's outputs are written in the same transaction."""
        with self._write() as db:
            db.execute(
                "UPDATE attempts SET status=?, finished=?, duration=?, exit_code=?, reason=?, records=?,"
                " peak_memory_bytes=? WHERE run_id=? AND task=? AND attempt=?",
                (
                    status,
                    time.time(),
                    duration,
                    exit_code,
                    reason,
                    json.dumps(dict(records or {}), default=str),
                    peak_memory_bytes,
                    run_id,
                    task,
                    attempt,
                ),
            )
            for name, ref in (outputs or {}).items():
                db.execute(
                    "INSERT OR REPLACE INTO outputs (run_id, task, output, uri, bytes, rows, format, sha256)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, task, name, ref.uri, ref.bytes, ref.rows, ref.format, ref.sha256),
                )

    def claim_message(self, run_id: str, *, trigger: str, source: str, message_id: str) -> str:
        """The run that owns message ``message_id`` of ``source``: ``run_id`` when this call is the
        first to see it, else the run an earlier delivery claimed (a redelivery never starts a
        second run); ``""`` when ``run_id`` is already taken by another message (pick another).
        Atomic across processes sharing the file."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO run_triggers (run_id, trigger, source, message_id, received) VALUES (?, ?, ?, ?, ?)",
                (run_id, trigger, source, message_id, time.time()),
            )
            row = db.execute(
                "SELECT run_id FROM run_triggers WHERE source = ? AND message_id = ?", (source, message_id)
            ).fetchone()
        return str(row["run_id"]) if row is not None else ""

    def started_by(self, run_id: str) -> str:
        """What started the run: ``"amqp queue recipes.ready, message 7f3a..."``, or ``""`` (by hand)."""
        rows = self._query("SELECT trigger, message_id FROM run_triggers WHERE run_id = ?", (run_id,))
        return f"{rows[0]['trigger']}, message {rows[0]['message_id']}" if rows else ""

    # -- reading (everyone)

    def list_runs(
        self,
        pipeline: str | None = None,
        status: str | None = None,
        run_date: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first, filtered by pipeline name, status and run date (YYYY-MM-DD)."""
        clauses, args = [], []
        for column, value in (("pipeline", pipeline), ("status", status), ("run_date", run_date)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(clauses) if clauses else "")
        sql += " ORDER BY started DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_run(row) for row in self._query(sql, tuple(args))]

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def tasks(self, run_id: str) -> list[TaskRecord]:
        rows = self._query("SELECT * FROM tasks WHERE run_id = ? ORDER BY rowid", (run_id,))
        return [TaskRecord(r["run_id"], r["task"], r["status"], r["attempts"], r["reason"]) for r in rows]

    def attempts(self, run_id: str, task: str | None = None) -> list[AttemptRecord]:
        sql = "SELECT * FROM attempts WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if task is not None:
            sql += " AND task = ?"
            args = (run_id, task)
        rows = self._query(sql + " ORDER BY started, task, attempt", args)
        return [
            AttemptRecord(
                run_id=r["run_id"],
                task=r["task"],
                attempt=r["attempt"],
                status=r["status"],
                started=r["started"],
                finished=r["finished"],
                duration=r["duration"],
                exit_code=r["exit_code"],
                reason=r["reason"],
                log_path=r["log_path"],
                sizing=json.loads(r["sizing"]) if r["sizing"] else None,
                records=json.loads(r["records"]) if r["records"] else {},
                peak_memory_bytes=r["peak_memory_bytes"],
            )
            for r in rows
        ]

    def outputs(self, run_id: str, task: str | None = None) -> list[OutputRecord]:
        sql = "SELECT * FROM outputs WHERE run_id = ?"
        args: tuple[Any, ...] = (run_id,)
        if task is not None:
            sql += " AND task = ?"
            args = (run_id, task)
        rows = self._query(sql + " ORDER BY rowid", args)
        return [
            OutputRecord(
                r["run_id"],
                r["task"],
                r["output"],
                ArtifactRef(r["uri"], r["bytes"], r["rows"], r["format"], r["sha256"]),
            )
            for r in rows
        ]


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        pipeline=row["pipeline"],
        spec=row["spec"],
        cwd=row["cwd"],
        params=json.loads(row["params"]),
        status=row["status"],
        started=row["started"],
        finished=row["finished"],
        pid=row["pid"],
        mode=row["mode"],
    )
