"""The SQL statements the control room's store runs, built once per database dialect.

Upserts (``ON CONFLICT``) are spelled differently by SQLite and PostgreSQL, and building one (its
``excluded`` alias) costs more than running it, so each is built once per dialect and shape and
then executed with parameters. PostgreSQL also gets a one-round-trip form of the most frequent
write (an attempt's row and its run's summary together).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, literal_column

from control_room.schema import events, runs
from steps.core.errors import ConfigError


def dialect_insert(dialect: str, table: Table) -> Any:
    """An INSERT with ON CONFLICT support for the connection's database."""
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise ConfigError(f"control room database {dialect!r} is not supported; use SQLite or PostgreSQL")


_STATEMENTS: dict[tuple[Any, ...], Any] = {}
_STATEMENTS_LOCK = threading.Lock()


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """Statements built once and executed with parameters: building an ON CONFLICT statement
    (its ``excluded`` alias) costs more than running it."""
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = build()
        with _STATEMENTS_LOCK:
            _STATEMENTS[key] = statement
    return statement


def upsert_statement(
    dialect: str, table: Table, columns: Sequence[str], keys: Sequence[str], values: dict[str, Any] | None = None
) -> Any:
    """INSERT of ``columns`` that updates them instead when a row with the same ``keys`` exists;
    ``values`` (expressions) when the statement carries its own, else parameters at execution."""
    statement = dialect_insert(dialect, table)
    if values is not None:
        statement = statement.values(values)
    updates = {k: statement.excluded[k] for k in columns if k not in keys}
    return statement.on_conflict_do_update(index_elements=list(keys), set_=updates)


def run_touch_statement(dialect: str, with_url: bool, values: dict[str, Any] | None = None) -> Any:
    """INSERT of a run summary that, for a known run, only moves ``updated_at`` forward (and sets
    the url when ``with_url``): the status and start stay what the run's events made them."""
    statement = dialect_insert(dialect, runs)
    if values is not None:
        statement = statement.values(values)
    newest = func.greatest if dialect == "postgresql" else func.max
    set_: dict[str, Any] = {"updated_at": newest(runs.c.updated_at, statement.excluded.updated_at)}
    if with_url:
        set_["url"] = statement.excluded.url
    return statement.on_conflict_do_update(index_elements=["pipeline", "run_id"], set_=set_)


def upsert(conn: Connection, table: Table, values: dict[str, Any], keys: Sequence[str]) -> None:
    """Insert ``values`` or, when a row with the same ``keys`` exists, update it (one statement)."""
    columns = tuple(sorted(values))
    dialect = conn.dialect.name
    statement = cached(
        (dialect, table.name, columns, tuple(keys)), lambda: upsert_statement(dialect, table, columns, keys)
    )
    conn.execute(statement, values)


#: Rows keyed by one task attempt of one run: observations and decisions.
ATTEMPT_KEY = ("pipeline", "run_id", "task", "attempt")


def attempt_row_and_run_statement(table: Table, columns: tuple[str, ...], stamp: str) -> Any:
    """PostgreSQL: upsert one attempt's row of ``table`` and touch its run, as one statement.

    The row's upsert is a data-modifying CTE (PostgreSQL always runs those) in front of the run's
    upsert, which reads the same parameters (``stamp`` is the row's time column). Sent alone in
    autocommit it is one round trip where a transaction took four or five (BEGIN, two upserts,
    COMMIT): each round trip hands the CPU between this thread and the database backend, and
    under load each hand-off is a chance to wait for a core.
    """
    row = upsert_statement("postgresql", table, columns, ATTEMPT_KEY, {c: bindparam(c) for c in columns})
    run = run_touch_statement(
        "postgresql",
        with_url=False,
        values={
            "pipeline": bindparam("pipeline"),
            "run_id": bindparam("run_id"),
            "status": literal_column("'running'"),
            "started_at": bindparam(stamp),
            "updated_at": bindparam(stamp),
        },
    )
    return run.add_cte(row.cte(table.name))


def event_once_statement(dialect: str) -> Any:
    """INSERT of an event that does nothing (returns no id) when its sender's id is stored."""
    return (
        dialect_insert(dialect, events)
        .on_conflict_do_nothing(index_elements=["pipeline", "run_id", "event_id"])
        .returning(events.c.id)
    )
