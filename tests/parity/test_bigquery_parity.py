"""BigQuery parity: the corpus on the local engine, and the same cases through the cloud path.

Every case in :mod:`tests.parity.bigquery_corpus` carries BigQuery's documented answer. The local
engine (sqlglot + DuckDB) must give it or refuse the query with one line naming the construct —
never another answer — in UTC and under a machine zone of America/Los_Angeles (BigQuery evaluates
in UTC whatever the client's zone).

Cloud side: headrace's BigQuery cloud path (the official client: dry run, typed query parameters,
REST result pages) against the independent emulator ``bqemulator``
(:mod:`tests.integration.bqemulator`). Where the emulator answers otherwise than BigQuery's
documentation, the case says so (``emulator=Deviation(...)`` with the doc section) and the test
checks the deviation is still there, so a fixed emulator shows up; everywhere else the emulator
must give the documented answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from steps.backends import bigquery
from steps.backends.sql_errors import SqlError
from steps.backends.sql_local import LocalSql
from steps.core.settings import load_settings
from steps.runtime.context import StepContext
from tests.backends.conftest import make_context
from tests.integration.bqemulator import BigQueryEmulator
from tests.parity.bigquery_corpus import CASES
from tests.parity.conftest import local_run_in_zone
from tests.parity.corpus import Case, verdict

GROUPS = {"arithmetic", "strings", "nulls", "time", "arrays", "parameters", "queries"}


def test_corpus_has_sixty_cases_over_every_group() -> None:
    assert len(CASES) >= 60
    assert {case.group for case in CASES} == GROUPS
    assert len({(case.sql, repr(case.params)) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_local_engine_answers_as_bigquery_documents_or_refuses(case: Case) -> None:
    outcome, detail = verdict(case, lambda: LocalSql("bigquery").run(case.sql, case.params)[0])

    assert outcome != "wrong", detail


def test_local_answers_do_not_move_with_the_machine_time_zone() -> None:
    run = local_run_in_zone("bigquery", "America/Los_Angeles")

    assert run["utc_offset_seconds"] in (-8 * 3600, -7 * 3600)  # the zone really was Los Angeles
    assert run["wrong"] == []
    assert run["counts"]["right"] >= 100


@pytest.fixture(scope="module")
def emulator_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StepContext]:
    with BigQueryEmulator() as emulator:
        settings = load_settings(
            {
                "profile": "aws",
                "artifact_root": str(tmp_path_factory.mktemp("artifacts")),
                "bigquery_project": emulator.project,
                "bigquery_endpoint": emulator.url,
            }
        )
        yield make_context(settings)


def run_on_emulator(ctx: StepContext, case: Case) -> Any:
    """The case through headrace's cloud path; any failure is one engine error, as a user sees it."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "result.parquet"
        try:
            bigquery._run_cloud(ctx, case.sql, case.params, path)
        except Exception as error:  # the client itself fails on some emulator answers
            raise SqlError(" ".join(str(error).split()), kind="engine") from error
        return pq.read_table(path)


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_emulator_answers_as_bigquery_documents_except_its_marked_deviations(
    case: Case, emulator_ctx: StepContext
) -> None:
    outcome, detail = verdict(case, lambda: run_on_emulator(emulator_ctx, case))

    if case.emulator is None:
        assert outcome == "right", detail
    else:
        assert outcome == "wrong", f"the emulator now answers as documented; drop the mark ({case.emulator.reason})"
