"""Run records written by an earlier headrace open, keep what they hold, and reach the newest schema.

Each old file is built here from the DDL that release ran (``tests/fixtures/runs_db_*.sql``, taken
from its source), with a run in it as that release's runner wrote it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.runs import MIGRATIONS, RunStore
from steps.core.errors import UserError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def old_file(path: Path, ddl: str) -> Path:
    """A runs.db as the earlier release left it: its tables, one finished run, user_version 0."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript((FIXTURES / ddl).read_text())
    db.execute(
        "INSERT INTO runs (id, pipeline, spec, cwd, params, run_date, status, started, finished, pid, mode) "
        "VALUES ('old-run', 'recipes', 'flow.py:pipeline', '/tmp', ?, '2026-11-01', 'succeeded', 100.0, 160.0, NULL, 'subprocess')",
        (json.dumps({"run_date": "2026-11-01"}),),
    )
    db.execute("INSERT INTO tasks (run_id, task, status, attempts) VALUES ('old-run', 'extract', 'succeeded', 1)")
    db.execute(
        "INSERT INTO outputs (run_id, task, output, uri, bytes, rows, format) "
        "VALUES ('old-run', 'extract', 'result', 'file:///tmp/result.parquet', 2048, 10, 'parquet')"
    )
    db.commit()
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()
    return path


@pytest.mark.parametrize("ddl", ["runs_db_with_triggers_unversioned.sql", "runs_db_before_triggers_unversioned.sql"])
def test_a_file_of_the_previous_release_opens_at_the_newest_version_with_its_runs(
    ddl: str, isolated_headrace: Path
) -> None:
    path = old_file(isolated_headrace / "runs.db", ddl)
    store = RunStore(path)
    assert store.version == MIGRATIONS[-1][0]
    (run,) = store.list_runs()
    assert (run.id, run.status, run.run_date) == ("old-run", "succeeded", "2026-11-01")
    assert [(o.task, o.bytes) for o in store.outputs("old-run")] == [("extract", 2048)]
    # the event-trigger table exists whichever release wrote the file
    assert store.claim_message("new-run", trigger="queue", source="amqp q", message_id="m1") == "new-run"
    store.close()
    listed = CliRunner().invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    assert "old-run" in listed.output and "new-run" not in listed.output
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1][0]


def test_reopening_applies_nothing_twice(isolated_headrace: Path) -> None:
    path = isolated_headrace / "runs.db"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO run_triggers VALUES ('r', 'queue', 's', 'm', 1.0)")
    again = RunStore(path)
    assert again.version == MIGRATIONS[-1][0]
    assert again.claim_message("other", trigger="queue", source="s", message_id="m") == "r"
    again.close()


def test_a_file_of_a_newer_headrace_is_refused_in_one_line(isolated_headrace: Path) -> None:
    path = isolated_headrace / "runs.db"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={MIGRATIONS[-1][0] + 1}")
    with pytest.raises(UserError, match=r"run records of a newer headrace \(schema \d+; this one knows \d+\)"):
        RunStore(path)
