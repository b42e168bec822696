"""The control room's schema: every table, and the versioned migrations that make them.

Migrations are a small versioned scheme rather than Alembic: a ``schema_version`` table and an
ordered list of functions. The embedded control room opens (and migrates) its SQLite file at every
local run, in-process and in milliseconds, without shipping an ``alembic.ini``, an ``env.py`` and a
migrations folder inside the wheel. A migration either creates tables it names or runs explicit
``ALTER`` statements; each runs in its own transaction and bumps the version, so a half-applied
upgrade never happens. Every table is created by a migration (the outbox's too), so a database
says by its version alone what it holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    inspect,
    select,
    text,
)

#: The whole schema. Core tables only: the ORM (``sqlalchemy.orm``, 0.05 s to import) is not used,
#: and every local run imports this module.
metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", Float, nullable=False),
)

observations = Table(
    "observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(100), nullable=False),
    Column("task", String(100), nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("target", String(20), nullable=False),
    Column("input_bytes", BigInteger, nullable=False),
    Column("input_rows", BigInteger, nullable=False),
    Column("output_bytes", BigInteger, nullable=False),
    Column("output_rows", BigInteger, nullable=False),
    Column("instance_type", String(100)),
    Column("instance_count", Integer, nullable=False),
    Column("cpu", String(40)),
    Column("memory", String(40)),
    Column("duration_seconds", Float, nullable=False),
    Column("peak_memory_bytes", BigInteger),
    Column("cost_usd", Float),
    Column("reason", Text, nullable=False),
    Column("recorded_at", Float, nullable=False),
    UniqueConstraint("pipeline", "run_id", "task", "attempt", name="uq_observation_attempt"),
    Index("ix_observations_task", "pipeline", "task", "recorded_at"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(100), nullable=False),
    Column("task", String(100), nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("target", String(20), nullable=False),
    Column("input_bytes", BigInteger, nullable=False),
    Column("instance_type", String(100), nullable=False),
    Column("instance_count", Integer, nullable=False),
    Column("cpu", String(40)),
    Column("memory", String(40)),
    Column("predicted_duration_seconds", Float),
    Column("predicted_peak_memory_bytes", BigInteger),
    Column("predicted_cost_usd", Float),
    Column("source", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request", JSON, nullable=False),
    Column("decided_at", Float, nullable=False),
    UniqueConstraint("pipeline", "run_id", "task", "attempt", name="uq_decision_attempt"),
    Index("ix_decisions_task", "pipeline", "task", "decided_at"),
)

runs = Table(
    "runs",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("run_id", String(200), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("url", Text),
    Index("ix_runs_started", "started_at"),
)

task_states = Table(
    "task_states",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("run_id", String(200), primary_key=True),
    Column("task", String(100), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("reason", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("pipeline", String(100), nullable=False),
    Column("run_id", String(200), nullable=False),
    Column("task", String(100)),
    Column("attempt", Integer),
    Column("kind", String(40), nullable=False),
    Column("at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("received_at", Float, nullable=False),
    #: The sender's id of the event (``RunEvent.event_id``): a retry with the same id is stored once.
    Column("event_id", String(64)),
    Index("ix_events_run", "pipeline", "run_id", "id"),
    Index("uq_events_event_id", "pipeline", "run_id", "event_id", unique=True),
)


#: Queued Slack messages (:mod:`control_room.notifications.outbox`): exactly-once delivery shared by replicas.
slack_outbox = Table(
    "slack_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(400), nullable=False, unique=True),
    Column("run_key", String(400), nullable=False),
    Column("kind", String(10), nullable=False),  # parent | reply | webhook | message
    Column("channel", String(200), nullable=False),
    Column("message", JSON, nullable=False),
    Column("summary", JSON),  # parent rows: the RunSummary the message renders
    Column("status", String(10), nullable=False),  # pending | sent | failed
    Column("ts", String(40)),  # Slack's message id once posted
    Column("version", Integer, nullable=False, default=1),
    Column("sent_version", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=False, default=""),
    Column("next_attempt_at", Float, nullable=False, default=0.0),
    Column("claim", String(40)),
    Column("claimed_until", Float),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float),
    Index("ix_slack_outbox_due", "status", "next_attempt_at"),
    Index("ix_slack_outbox_run", "run_key", "kind"),
)

Migration = tuple[int, str, Callable[[Connection], None]]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def apply(conn: Connection) -> None:
        metadata.create_all(conn, tables=list(tables), checkfirst=True)

    return apply


def _add_event_ids(conn: Connection) -> None:
    """Events carry their sender's id, unique per run (databases made by version 1 lack it)."""
    if "event_id" not in {column["name"] for column in inspect(conn).get_columns("events")}:
        conn.execute(text("ALTER TABLE events ADD COLUMN event_id VARCHAR(64)"))
    next(i for i in events.indexes if i.name == "uq_events_event_id").create(conn, checkfirst=True)


#: Ordered migrations; append (version, description, function) to change the schema.
MIGRATIONS: list[Migration] = [
    (
        1,
        "observations, decisions, runs, task states, events",
        _create(observations, decisions, runs, task_states, events),
    ),
    (2, "events.event_id: one stored event per sender id", _add_event_ids),
    (3, "slack_outbox: queued Slack messages", _create(slack_outbox)),
]


def migrate(engine: Engine) -> int:
    """Bring the database to the newest schema; returns the version it is at. Safe to run often."""
    with engine.begin() as conn:
        metadata.create_all(conn, tables=[schema_version], checkfirst=True)
    current = current_version(engine)
    for version, description, apply in sorted(MIGRATIONS, key=lambda m: m[0]):
        if version <= current:
            continue
        with engine.begin() as conn:
            apply(conn)
            conn.execute(
                insert(schema_version).values(version=version, description=description, applied_at=time.time())
            )
        current = version
    return current


def current_version(engine: Engine) -> int:
    with engine.connect() as conn:
        value = conn.execute(select(func.max(schema_version.c.version))).scalar()
    return int(value or 0)
