"""Athena parity: the corpus on the local engine, and the same cases through the cloud path.

Every case in :mod:`tests.parity.athena_corpus` carries Trino's documented answer (Athena engine
v3). The local engine must give it or refuse with one line naming the construct — never another
answer — in UTC and under a machine zone of America/Los_Angeles (Athena evaluates in UTC).
"""

from __future__ import annotations

import pytest

from steps.sql_local import LocalSql, name_positional_parameters
from tests.parity.athena_corpus import CASES
from tests.parity.conftest import local_run_in_zone
from tests.parity.corpus import Case, verdict

GROUPS = {"arithmetic", "strings", "nulls", "time", "arrays", "parameters"}


def run_local(case: Case) -> object:
    sql = name_positional_parameters(case.sql, "athena", list(case.params))
    return LocalSql("athena").run(sql, case.params)[0]


def test_corpus_has_sixty_cases_over_every_group() -> None:
    assert len(CASES) >= 60
    assert {case.group for case in CASES} == GROUPS
    assert len({(case.sql, repr(case.params)) for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_local_engine_answers_as_trino_documents_or_refuses(case: Case) -> None:
    outcome, detail = verdict(case, lambda: run_local(case))

    assert outcome != "wrong", detail


def test_local_answers_do_not_move_with_the_machine_time_zone() -> None:
    run = local_run_in_zone("athena", "America/Los_Angeles")

    assert run["utc_offset_seconds"] in (-8 * 3600, -7 * 3600)
    assert run["wrong"] == []
    assert run["counts"]["right"] >= 90
