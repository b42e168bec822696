"""The store on SQLite and PostgreSQL: idempotent observations, decisions with runs, events,
and the versioned migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from control_room import schema
from control_room import store as store_module
from control_room.schema import current_version
from control_room.store import Store, database_url
from steps.core.contract import (
    EventKind,
    Observation,
    Outcome,
    RunEvent,
    SizingDecision,
    SizingRequest,
    SizingTarget,
)


def observation(run_id: str = "r1", attempt: int = 1, **changes: object) -> Observation:
    values: dict[str, object] = dict(
        pipeline="recipes",
        task="train",
        run_id=run_id,
        attempt=attempt,
        outcome=Outcome.SUCCEEDED,
        input_bytes=4_000_000_000,
        peak_memory_bytes=9_000_000_000,
        duration_seconds=321.0,
        instance_type="ml.m5.xlarge",
        target=SizingTarget.SAGEMAKER,
    )
    values.update(changes)
    return Observation(**values)  # type: ignore[arg-type]


def test_the_same_attempt_observed_twice_is_stored_once(store: Store) -> None:
    store.add_observation(observation())
    store.add_observation(observation(duration_seconds=400.0))
    store.add_observation(observation(attempt=2))
    history = store.history("recipes", "train")
    assert [(o.attempt, o.duration_seconds) for o in history] == [(1, 400.0), (2, 321.0)]
    assert store.count_observations() == 2


def test_history_returns_what_was_observed_field_for_field(store: Store) -> None:
    sent = observation(outcome=Outcome.OOM, peak_memory_bytes=None, reason="OOMKilled", cost_usd=0.12)
    store.add_observation(sent)
    assert store.history("recipes", "train") == [sent]


def test_a_decision_is_stored_with_its_request_under_the_run(store: Store) -> None:
    request = SizingRequest("recipes", "train", "r7", target=SizingTarget.SAGEMAKER, input_bytes=123, attempt=2)
    decision = SizingDecision(SizingTarget.SAGEMAKER, "ml.m5.2xlarge", reason="because", predicted_cost_usd=0.4)
    store.add_decision(request, decision)
    run = store.run("r7")
    assert run is not None and run["status"] == "running"
    (stored,) = run["decisions"]
    assert stored["instance_type"] == "ml.m5.2xlarge" and stored["reason"] == "because"
    assert stored["request"]["input_bytes"] == 123 and stored["request"]["attempt"] == 2


def test_events_fold_into_run_and_task_summaries(store: Store) -> None:
    store.add_event(RunEvent(EventKind.RUN_STARTED, "recipes", "r1", at=100.0, url="http://argo/r1"))
    store.add_event(
        RunEvent(EventKind.TASK_FAILED, "recipes", "r1", task="train", attempt=1, at=110.0, reason="OOMKilled")
    )
    store.add_event(RunEvent(EventKind.TASK_SUCCEEDED, "recipes", "r1", task="train", attempt=2, at=120.0))
    store.add_event(RunEvent(EventKind.RUN_FAILED, "recipes", "r1", at=130.0))
    run = store.run("r1", "recipes")
    assert run is not None
    assert (run["status"], run["started_at"], run["finished_at"], run["url"]) == (
        "failed",
        100.0,
        130.0,
        "http://argo/r1",
    )
    assert [(t["task"], t["status"], t["attempt"]) for t in run["tasks"]] == [("train", "succeeded", 2)]
    assert [e["kind"] for e in run["events"]] == ["run.started", "task.failed", "task.succeeded", "run.failed"]
    assert run["events"][1]["reason"] == "OOMKilled"
    assert [r["run_id"] for r in store.runs("recipes")] == ["r1"]


def test_an_observation_opens_its_run_and_never_reopens_a_finished_one(store: Store) -> None:
    store.add_event(RunEvent(EventKind.RUN_STARTED, "recipes", "r1", at=100.0, url="http://argo/r1"))
    store.add_observation(observation("r1"))
    store.add_observation(observation("r2"))
    first, second = store.run("r1"), store.run("r2")
    assert first is not None and second is not None
    assert (first["status"], first["started_at"], first["url"]) == ("running", 100.0, "http://argo/r1")
    assert first["updated_at"] > 100.0
    assert second["status"] == "running" and second["started_at"] == second["updated_at"] > 100.0
    store.add_event(RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r1", at=first["updated_at"] + 1))
    store.add_observation(observation("r1", attempt=2))  # a late report of an earlier attempt
    finished = store.run("r1")
    assert finished is not None and finished["status"] == "succeeded"
    assert [o["attempt"] for o in finished["observations"]] == [1, 2]


def test_warming_the_pool_opens_the_request_threads_connections_up_front(database_url: str) -> None:
    opened = Store.open(database_url)
    try:
        warmed = opened.warm_pool(4)
        if database_url.startswith("sqlite"):
            assert warmed == 0
        else:
            assert warmed >= 4
            opened.add_observation(observation())  # served from the warm pool
            assert opened.count_observations() == 1
    finally:
        opened.close()


def test_a_run_end_reported_twice_is_one_end_and_a_retried_run_ends_again(store: Store) -> None:
    first = store.add_event(RunEvent(EventKind.RUN_FAILED, "recipes", "r1", at=200.0, reason="exit handler"))
    again = store.add_event(RunEvent(EventKind.RUN_FAILED, "recipes", "r1", at=205.0, reason="watcher"))
    assert (first.repeat, again.repeat) == (False, True)
    run = store.run("r1")
    assert run is not None and (run["status"], run["finished_at"]) == ("failed", 200.0)
    assert [e["reason"] for e in run["events"]] == ["exit handler", "watcher"]  # both kept in the log
    assert not store.add_event(RunEvent(EventKind.RUN_STARTED, "recipes", "r1", at=300.0)).repeat  # argo retry
    assert not store.add_event(RunEvent(EventKind.RUN_FAILED, "recipes", "r1", at=400.0)).repeat
    assert not store.add_event(RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r2", at=400.0)).repeat


def test_an_unknown_run_is_none(store: Store) -> None:
    assert store.run("nope") is None


def test_opening_twice_does_not_rerun_migrations(database_url: str) -> None:
    first = Store.open(database_url)
    first.add_observation(observation())
    first.close()
    again = Store.open(database_url)
    newest = max(m[0] for m in schema.MIGRATIONS)
    assert again.version == newest and again.count_observations() == 1
    with again.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == newest
    again.close()


def test_a_new_migration_runs_once_in_order(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(database_url).close()
    calls: list[int] = []
    following = max(m[0] for m in schema.MIGRATIONS) + 1

    def add_column(conn: object) -> None:
        calls.append(following)
        conn.execute(text("ALTER TABLE observations ADD COLUMN note VARCHAR(40)"))  # type: ignore[attr-defined]

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, (following, "observation notes", add_column)])
    upgraded = Store.open(database_url)
    assert upgraded.version == following and current_version(upgraded.engine) == following
    Store.open(database_url).close()
    assert calls == [following]
    with upgraded.engine.connect() as conn:
        conn.execute(text("SELECT note FROM observations"))
    upgraded.close()


def test_the_default_database_is_a_wal_sqlite_file_in_the_state_folder(tmp_path: Path) -> None:
    url = database_url(None, tmp_path / "state")
    assert url == f"sqlite:///{(tmp_path / 'state' / 'control-room.db').resolve()}"
    opened = Store.open(None, tmp_path / "state")
    with opened.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    opened.close()
    assert (tmp_path / "state" / "control-room.db").exists()


def test_cached_history_sees_its_own_writes_at_once_and_other_replicas_after_the_recheck(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica_a, replica_b = Store.open(database_url), Store.open(database_url)
    replica_a.add_observation(observation("r1"))
    assert [o.run_id for o in replica_b.recent_history("recipes", "train")] == ["r1"]
    replica_b.add_observation(observation("r2"))
    assert [o.run_id for o in replica_b.recent_history("recipes", "train")] == ["r1", "r2"]
    replica_a.add_observation(observation("r3"))
    monkeypatch.setattr(store_module, "HISTORY_RECHECK_SECONDS", 0.0)
    assert [o.run_id for o in replica_b.recent_history("recipes", "train")] == ["r1", "r2", "r3"]
    replica_a.close()
    replica_b.close()


def test_a_retry_reads_the_oom_another_process_recorded_a_moment_ago(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher records an OOM kill; the retry's sizing, a moment later on the service, sees it."""
    monkeypatch.setattr(store_module, "HISTORY_RECHECK_SECONDS", 3600.0)
    service, watcher = Store.open(database_url), Store.open(database_url)
    service.add_observation(observation("r1"))
    assert [o.run_id for o in service.recent_history("recipes", "train")] == ["r1"]
    watcher.add_observation(observation("r2"))
    assert [o.run_id for o in service.recent_history("recipes", "train")] == ["r1"]  # trusted for a while
    assert [o.run_id for o in service.recent_history("recipes", "train", recheck=True)] == ["r1", "r2"]
    service.close()
    watcher.close()


def test_an_event_sent_again_with_its_id_is_stored_once_and_answered_as_a_repeat(store: Store) -> None:
    started = RunEvent(EventKind.TASK_STARTED, "recipes", "r1", task="train", attempt=1, at=100.0)
    first = store.add_event(started)
    retry = store.add_event(started)  # the same event: its answer was lost, the sender tried again
    assert not first.repeat and retry == (first.id, True)
    other = store.add_event(RunEvent(EventKind.TASK_STARTED, "recipes", "r1", task="train", attempt=1, at=100.0))
    assert not other.repeat and other.id != first.id  # a new event, though it says the same
    assert len(store.run("r1")["events"]) == 2  # type: ignore[index]


def test_a_version_1_database_gets_event_ids_and_keeps_its_events(database_url: str) -> None:
    old = Store.open(database_url)
    old.add_event(RunEvent(EventKind.RUN_STARTED, "recipes", "r1", at=100.0))
    with old.engine.begin() as conn:  # back to what version 1 made
        conn.execute(text("DROP INDEX uq_events_event_id"))
        conn.execute(text("ALTER TABLE events DROP COLUMN event_id"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 1"))
    old.close()
    upgraded = Store.open(database_url)
    assert upgraded.version == max(m[0] for m in schema.MIGRATIONS)
    again = RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r1", at=200.0)
    assert upgraded.add_event(again).id == upgraded.add_event(again).id
    assert [e["kind"] for e in upgraded.run("r1")["events"]] == ["run.started", "run.succeeded"]  # type: ignore[index]
    upgraded.close()


def test_a_database_of_the_previous_release_opens_at_the_newest_version_with_its_rows(tmp_path: Path) -> None:
    """Built from the DDL that release left (``tests/fixtures/control_room_db_v2.sql``: version 2,
    the outbox made outside the versions), with an observation and a queued Slack message in it."""
    import sqlite3

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    path = tmp_path / "control-room.db"
    with sqlite3.connect(path) as db:
        db.executescript((fixtures / "control_room_db_v2.sql").read_text())
        db.execute(
            "INSERT INTO observations (pipeline, task, run_id, attempt, outcome, target, input_bytes, input_rows, "
            "output_bytes, output_rows, instance_count, duration_seconds, reason, recorded_at) "
            "VALUES ('recipes', 'extract', 'r1', 1, 'succeeded', 'pod', 1000, 10, 500, 5, 1, 12.0, '', 1.0)"
        )
        db.execute(
            "INSERT INTO slack_outbox (key, run_key, kind, channel, message, status, version, sent_version, attempts, "
            "last_error, next_attempt_at, created_at) "
            "VALUES ('k1', 'recipes/r1', 'message', '#ml', '{}', 'pending', 1, 0, 0, '', 0.0, 1.0)"
        )
    opened = Store.open(f"sqlite:///{path}")
    assert opened.version == max(m[0] for m in schema.MIGRATIONS) == 3
    assert opened.count_observations() == 1
    with opened.engine.connect() as conn:
        assert conn.execute(text("SELECT key FROM slack_outbox")).scalars().all() == ["k1"]
        described = conn.execute(text("SELECT description FROM schema_version WHERE version = 3")).scalar()
    assert described == "slack_outbox: queued Slack messages"
    opened.close()
