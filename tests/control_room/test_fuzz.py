"""The served control room fuzzed from its own OpenAPI description by schemathesis.

A real ``headrace control-room serve`` on 127.0.0.1 (uvicorn), on SQLite and on PostgreSQL:
schemathesis generates requests that fit the spec (positive) and requests that break it
(negative), and checks every answer: never a 5xx, every status code and content type documented,
every body shaped as documented, invalid input refused, valid input accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.control_room.conftest import TOKEN, Served, fresh_postgres, serve

AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Examples per operation and mode: bounded, so both databases take about a minute together.
EXAMPLES = 50


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.integration])])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """The control room served on SQLite, then on the machine's PostgreSQL."""
    db = (
        f"sqlite:///{tmp_path / 'fuzzed.db'}"
        if request.param == "sqlite"
        else fresh_postgres(request.getfixturevalue("postgres_url"))
    )
    running = serve(db, tmp_path)
    yield running
    running.stop()


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, url: str, session: requests.Session) -> int:
    """Send ``EXAMPLES`` generated requests of one operation and check each answer; returns how
    many were sent (raises on the first answer that breaks a check, shrunk by Hypothesis)."""
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=url, session=session, headers=AUTH)

    check()
    return sent


@pytest.mark.integration
@pytest.mark.slow
def test_the_served_api_answers_every_generated_request_as_its_spec_says_and_never_with_a_5xx(
    service: Served,
) -> None:
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json", headers=AUTH)
    session = requests.Session()
    sent: dict[str, int] = {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{mode.value} {operation.label}"
            try:
                sent[label] = fuzz(operation, mode, service.url, session)
            except Unsatisfiable:  # no parameters and no body (health, metrics): nothing to break
                assert mode is GenerationMode.NEGATIVE, label
            except Exception as error:  # every operation's failure, then all of them reported
                failures.append(f"{label}: {error}")
    print(f"schemathesis requests per operation and mode: {sent}; total {sum(sent.values())}")
    assert not failures, "\n\n".join(failures)
    assert sum(sent.values()) >= 500
