"""BigQuery parity: the corpus on the local engine, and the same cases through the cloud path.

Every case in :mod:`tests.parity.bigquery_corpus` carries BigQuery's documented answer. The local
engine (sqlglot + DuckDB) must give it or refuse the query with one line naming the construct —
never another answer — in UTC and under a machine zone of America/Los_Angeles (BigQuery evaluates
in UTC whatever the client's zone).
"""

from __future__ import annotations

import pytest

from steps.sql_local import LocalSql
from tests.parity.bigquery_corpus import CASES
from tests.parity.conftest import local_run_in_zone
from tests.parity.corpus import Case, verdict

GROUPS = {"arithmetic", "strings", "nulls", "time", "arrays", "parameters"}


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
