"""Athena parity: the corpus on the local engine, and the same cases through the cloud path.

Every case in :mod:`tests.parity.athena_corpus` carries Trino's documented answer (Athena engine
v3). The local engine must give it or refuse with one line naming the construct — never another
answer — in UTC and under a machine zone of America/Los_Angeles (Athena evaluates in UTC).

Cloud side: boto3 against the moto server, through ``steps.backends.athena.query`` (start, poll, paginated
GetQueryResults). moto runs no SQL: each case hands it, through moto's documented
``/moto-api/static/athena/query-results`` endpoint, the column type and text Athena returns for
the documented answer, and the result must come back as the same value with the same Arrow type
the local side gives. Cases where the cloud raises are not replayed (moto can not fail a query).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from steps.backends import athena
from steps.backends.sql_local import LocalSql, name_positional_parameters
from steps.core.settings import load_settings
from tests.backends.conftest import make_context
from tests.parity.athena_corpus import CASES
from tests.parity.conftest import local_run_in_zone
from tests.parity.corpus import Case, Raises, Rows, verdict

GROUPS = {"arithmetic", "strings", "nulls", "time", "arrays", "parameters", "queries"}


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


def queue_answer(moto: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """Hand moto the result set Athena returns (header row first, as Athena sends it)."""
    header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
    body = {
        "results": [
            {
                "rows": [header] + [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                "column_info": [
                    {"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", "CaseSensitive": False}
                    for name, kind in columns
                ],
            }
        ]
    }
    request = urllib.request.Request(
        f"{moto}/moto-api/static/athena/query-results",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    assert urllib.request.urlopen(request).status == 201


def athena_answer(case: Case) -> tuple[list[tuple[str, str]], list[list[str | None]]]:
    """The columns and rows Athena's GetQueryResults carries for the case's documented answer."""
    if isinstance(case.expect, Rows):
        assert isinstance(case.athena, list)
        names = list(case.expect.rows[0])
        return list(zip(names, case.athena, strict=True)), [
            [None if row[n] is None else str(row[n]) for n in names] for row in case.expect.rows
        ]
    assert isinstance(case.athena, tuple)
    kind, text = case.athena
    return [("v", kind)], [[text]]


CLOUD_CASES = [case for case in CASES if not isinstance(case.expect, Raises)]


@pytest.mark.integration
@pytest.mark.parametrize("case", CLOUD_CASES, ids=lambda case: case.id)
def test_cloud_path_types_athena_results_as_the_local_side_does(
    case: Case, s3_root: str, aws_env: str, tmp_path: Path
) -> None:
    columns, rows = athena_answer(case)
    queue_answer(aws_env, columns, rows)
    settings = load_settings({"profile": "aws", "artifact_root": s3_root, "athena_workgroup": "primary"})
    ctx = make_context(settings, task="parity")

    outcome, detail = verdict(case, lambda: ctx.artifact(athena.query(ctx, case.sql, params=case.params)).read_arrow())

    assert outcome == "right", detail
