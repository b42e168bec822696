"""The control room's edges: every value the database cannot hold is a 422 naming the field, the
same on SQLite and PostgreSQL; what it can hold is stored; retried events are stored once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_room.app import TOKEN_COOKIE, Tokens, create_app
from control_room.bounds import INT32, INT64
from control_room.sizing import Policy
from control_room.store import Store
from steps.core.contract import RunEvent
from tests.control_room.conftest import TOKEN
from tests.control_room.test_app import AUTH, observation_body, sizing_body


@pytest.fixture
def received() -> list[RunEvent]:
    return []


@pytest.fixture
def client(store: Store, policy: Policy, received: list[RunEvent]) -> Iterator[TestClient]:
    app = create_app(store, policy, tokens=Tokens([TOKEN]), notifier=received.append)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def event_body(**changes: Any) -> dict[str, Any]:
    return {"kind": "task.started", "pipeline": "recipes", "run_id": "r1", "task": "train", "attempt": 1, **changes}


def raw(client: TestClient, path: str, text: str) -> Any:
    """POST JSON text as is (NaN, lone surrogates: what a JSON encoder would refuse to write)."""
    return client.post(path, content=text.encode(), headers={**AUTH, "content-type": "application/json"})


def refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in body["message"], body


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/sizing", sizing_body(input_bytes=2**63), "input_bytes"),
        ("/v1/sizing", sizing_body(input_rows=2**64), "input_rows"),
        ("/v1/sizing", sizing_body(bytes_per_row=1e300), "bytes_per_row"),
        ("/v1/sizing", sizing_body(attempt=2**31), "attempt"),
        ("/v1/sizing", sizing_body(pipeline="p" * 101), "pipeline"),
        ("/v1/sizing", sizing_body(run_id="r" * 201), "run_id"),
        ("/v1/sizing", sizing_body(task=" "), "task"),
        ("/v1/sizing", sizing_body(declared={"memory": "9" * 41}), "declared.memory"),
        ("/v1/sizing", sizing_body(declared={"instance_count": "two"}), "declared.instance_count"),
        ("/v1/sizing", sizing_body(previous_instance_type="m" * 101), "previous_instance_type"),
        ("/v1/observations", observation_body(cpu="1" * 41), "cpu"),
        ("/v1/observations", observation_body(memory="1" * 41), "memory"),
        ("/v1/observations", observation_body(attempt=2**31), "attempt"),
        ("/v1/observations", observation_body(output_bytes=2**63), "output_bytes"),
        ("/v1/observations", observation_body(task="t" * 150), "task"),
        ("/v1/observations", observation_body(reason="out\x00of memory"), "reason"),
        ("/v1/observations", observation_body(instance_count=True), "instance_count"),
        ("/v1/events", event_body(pipeline="p" * 200), "pipeline"),
        ("/v1/events", event_body(attempt=2**31), "attempt"),
        ("/v1/events", event_body(log_tail=["ok", "nul\x00here"]), "log_tail.1"),
        ("/v1/events", event_body(event_id="e" * 65), "event_id"),
        ("/v1/events", event_body(sizing={"target": "pod", "instance_type": "x", "cpu": "9" * 41}), "sizing.cpu"),
    ],
)
def test_a_value_the_database_cannot_hold_is_a_422_naming_the_field(
    client: TestClient, path: str, body: dict[str, Any], field: str
) -> None:
    refused(client.post(path, json=body, headers=AUTH), field)


@pytest.mark.parametrize(
    ("path", "text", "field"),
    [
        ("/v1/observations", json.dumps(observation_body(duration_seconds=float("nan"))), "duration_seconds"),
        ("/v1/observations", json.dumps(observation_body(cost_usd=float("inf"))), "cost_usd"),
        ("/v1/sizing", json.dumps(sizing_body(deadline_seconds=float("-inf"))), "deadline_seconds"),
        (
            "/v1/events",
            json.dumps(event_body(sizing={"target": "pod", "instance_type": "x", "predicted_cost_usd": float("nan")})),
            "sizing.predicted_cost_usd",
        ),
        ("/v1/events", json.dumps(event_body(at=float("nan"))), "at"),
        ("/v1/sizing", json.dumps(sizing_body()).replace('"recipes"', '"rec\\ud800ipes"'), "pipeline"),
        ("/v1/events", json.dumps(event_body(reason="x")).replace('"x"', '"\\udfff"'), "reason"),
    ],
)
def test_nan_infinity_and_lone_surrogates_are_a_422_that_renders(
    client: TestClient, path: str, text: str, field: str
) -> None:
    refused(raw(client, path, text), field)


def test_values_at_every_bound_are_stored_and_read_back_on_both_databases(client: TestClient) -> None:
    name, run_id = "p" * 100, "r" * 200
    sized = client.post(
        "/v1/sizing",
        json=sizing_body(
            pipeline=name,
            run_id=run_id,
            input_bytes=INT64[1],
            input_rows=INT64[1],
            attempt=INT32[1],
            bytes_per_row=float(INT64[1]),
            declared={"memory": "1" * 40, "instance_type": "m" * 100},
        ),
        headers=AUTH,
    )
    assert sized.status_code == 200, sized.text
    observed = client.post(
        "/v1/observations",
        json=observation_body(
            pipeline=name, run_id=run_id, task="t" * 100, attempt=INT32[1], output_bytes=INT64[1], cpu="1" * 40
        ),
        headers=AUTH,
    )
    assert observed.status_code == 200, observed.text
    run = client.get(f"/v1/runs/{run_id}", headers=AUTH)
    assert run.status_code == 200
    assert run.json()["observations"][0]["output_bytes"] == INT64[1]
    assert run.json()["decisions"][0]["request"]["input_rows"] == INT64[1]


@pytest.mark.parametrize(
    "path",
    ["/v1/runs/a%00b", "/v1/runs?pipeline=a%00b", "/v1/tasks/recipes/tr%00ain", "/v1/tasks/" + "p" * 101 + "/train"],
)
def test_reads_with_a_name_no_column_can_hold_are_a_422(client: TestClient, path: str) -> None:
    assert client.get(path, headers=AUTH).status_code == 422


def test_an_event_retried_with_its_id_is_stored_and_notified_once(client: TestClient, received: list[RunEvent]) -> None:
    body = event_body(kind="run.failed", event_id="5f0c0e8e-retry-me", reason="exit code 1")
    first = client.post("/v1/events", json=body, headers=AUTH)
    retry = client.post("/v1/events", json=body, headers=AUTH)
    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json()["repeat"] and retry.json()["id"] == first.json()["id"]
    assert len(received) == 1
    assert len(client.get("/v1/runs/r1", headers=AUTH).json()["events"]) == 1


def test_the_page_keeps_only_a_token_that_signs_in_and_survives_one_that_is_not_latin_1(client: TestClient) -> None:
    foreign = client.get("/", params={"token": "токен-☃"})
    assert foreign.status_code == 401 and TOKEN_COOKIE not in foreign.cookies
    wrong_query = client.get("/", params={"token": "nope"}, headers=AUTH)  # signed in by its header
    assert wrong_query.status_code == 200 and TOKEN_COOKIE not in wrong_query.headers.get("set-cookie", "")
    right = client.get("/", params={"token": TOKEN})
    assert right.status_code == 200 and TOKEN_COOKIE in right.headers["set-cookie"]


def test_every_status_code_the_api_answers_is_in_its_spec(client: TestClient) -> None:
    spec = client.get("/openapi.json", headers=AUTH).json()
    codes = {path: {m: set(op["responses"]) for m, op in ops.items()} for path, ops in spec["paths"].items()}
    for path in ("/v1/sizing", "/v1/observations", "/v1/events"):
        assert {"200", "400", "401", "413", "422"} <= codes[path]["post"], path
    assert {"200", "401", "404", "422"} <= codes["/v1/runs/{run_id}"]["get"]
    assert {"200", "503"} <= codes["/healthz"]["get"]
    metrics = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
