"""The control room's HTTP API: auth, validation, sizing, observations, events, history, metrics."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_room.app import Tokens, create_app
from control_room.sizing import Policy
from control_room.store import Store
from steps.core.contract import RunEvent
from tests.control_room.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def received() -> list[RunEvent]:
    return []


@pytest.fixture
def client(store: Store, policy: Policy, received: list[RunEvent]) -> Iterator[TestClient]:
    app = create_app(store, policy, tokens=Tokens([TOKEN]), notifier=received.append)
    with TestClient(app) as test_client:
        yield test_client


def sizing_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pipeline": "recipes",
        "task": "train",
        "run_id": "r1",
        "target": "sagemaker",
        "input_bytes": 4_200_000_000,
    }
    body.update(changes)
    return body


def observation_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pipeline": "recipes",
        "task": "train",
        "run_id": "r1",
        "attempt": 1,
        "outcome": "succeeded",
        "target": "sagemaker",
        "input_bytes": 4_000_000_000,
        "instance_type": "ml.m5.xlarge",
        "duration_seconds": 300.0,
        "peak_memory_bytes": 10_000_000_000,
    }
    body.update(changes)
    return body


def test_every_route_but_health_needs_the_bearer_token(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    for method, path in [
        ("post", "/v1/sizing"),
        ("post", "/v1/observations"),
        ("post", "/v1/events"),
        ("get", "/v1/runs"),
        ("get", "/v1/runs/r1"),
        ("get", "/v1/tasks/recipes/train"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ]:
        response = client.request(method, path, json={})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, path
    assert client.get("/").status_code == 401


def test_tokens_come_from_a_mounted_secret_file_and_follow_its_rotation(
    tmp_path: Path, store: Store, policy: Policy
) -> None:
    secret = tmp_path / "token"
    secret.write_text("first-token\n")
    app = create_app(store, policy, tokens=Tokens.from_environment({"HEADRACE_CONTROL_ROOM_TOKEN_FILE": str(secret)}))
    with TestClient(app) as client:
        assert client.get("/v1/runs", headers={"Authorization": "Bearer first-token"}).status_code == 200
        secret.write_text("second-token\n")
        os.utime(secret, (time.time() + 5, time.time() + 5))
        assert client.get("/v1/runs", headers={"Authorization": "Bearer first-token"}).status_code == 401
        assert client.get("/v1/runs", headers={"Authorization": "Bearer second-token"}).status_code == 200


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"input_bytes": -1}, "input_bytes", "greater than or equal to 0"),
        ({"attempt": 0}, "attempt", "greater than or equal to 1"),
        ({"deadline_seconds": -5}, "deadline_seconds", "greater than 0"),
        ({"bytes_per_row": 0}, "bytes_per_row", "greater than 0"),
        ({"previous_outcome": "exploded"}, "previous_outcome", "'oom'"),
        ({"input_bytes": "lots"}, "input_bytes", "must be a JSON number"),
        ({"target": "lambda"}, "target", "pod"),
        ({"pipeline": ""}, "pipeline", "at least 1 character"),
    ],
)
def test_bad_sizing_requests_are_422_naming_the_field(
    client: TestClient, change: dict[str, Any], field: str, message: str
) -> None:
    response = client.post("/v1/sizing", json=sizing_body(**change), headers=AUTH)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"][0]["loc"] == ["body", field]
    assert message in body["detail"][0]["msg"]
    assert field in body["message"]


def test_a_request_missing_a_required_field_names_it(client: TestClient) -> None:
    response = client.post("/v1/sizing", json={"pipeline": "recipes", "task": "train"}, headers=AUTH)
    assert response.status_code == 422
    assert ["body", "run_id"] in [problem["loc"] for problem in response.json()["detail"]]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attempt": 0}, "attempt"),
        ({"output_bytes": -3}, "output_bytes"),
        ({"instance_count": 0}, "instance_count"),
        ({"duration_seconds": -1.0}, "duration_seconds"),
        ({"outcome": "meh"}, "outcome"),
    ],
)
def test_bad_observations_are_422_naming_the_field(client: TestClient, change: dict[str, Any], field: str) -> None:
    response = client.post("/v1/observations", json=observation_body(**change), headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_sizing_returns_the_decision_and_stores_it_with_the_run(client: TestClient) -> None:
    response = client.post("/v1/sizing", json=sizing_body(), headers=AUTH)
    assert response.status_code == 200
    decision = response.json()
    assert decision["target"] == "sagemaker" and decision["source"] == "rules"
    assert decision["instance_type"] == "ml.m5.xlarge"  # rules.yaml: sagemaker inputs <= 4Gi (4.2 GB is 3.9 GiB)
    run = client.get("/v1/runs/r1", headers=AUTH).json()
    assert run["decisions"][0]["instance_type"] == decision["instance_type"]
    assert run["decisions"][0]["request"]["input_bytes"] == 4_200_000_000


def test_observations_teach_the_next_decision(client: TestClient) -> None:
    for i, gb in enumerate((1, 2, 3, 4, 5)):
        body = observation_body(run_id=f"r{i}", input_bytes=gb * 10**9, peak_memory_bytes=int(2.5 * gb * 10**9))
        assert client.post("/v1/observations", json=body, headers=AUTH).status_code == 200
    decision = client.post("/v1/sizing", json=sizing_body(run_id="r9"), headers=AUTH).json()
    assert decision["source"] == "policy"
    assert "learned peak" in decision["reason"] and "from 5 runs on ml.m5.xlarge" in decision["reason"]


def test_posting_an_observation_twice_keeps_one(client: TestClient) -> None:
    for _ in range(3):
        assert client.post("/v1/observations", json=observation_body(), headers=AUTH).status_code == 200
    history = client.get("/v1/tasks/recipes/train", headers=AUTH).json()
    assert len(history["observations"]) == 1
    assert history["observations"][0]["peak_memory_bytes"] == 10_000_000_000


def test_events_are_stored_and_handed_to_the_notifier(client: TestClient, received: list[RunEvent]) -> None:
    body = {
        "kind": "task.failed",
        "pipeline": "recipes",
        "run_id": "r1",
        "task": "train",
        "attempt": 1,
        "reason": "OOMKilled",
        "log_tail": ["Killed"],
    }
    response = client.post("/v1/events", json=body, headers=AUTH)
    assert response.status_code == 200
    assert [(e.kind, e.task, e.reason, e.log_tail) for e in received] == [
        ("task.failed", "train", "OOMKilled", ["Killed"])
    ]
    run = client.get("/v1/runs/r1", headers=AUTH).json()
    assert run["tasks"][0]["status"] == "failed"
    assert run["events"][0]["reason"] == "OOMKilled"


def test_a_failing_notifier_does_not_fail_the_event(store: Store, policy: Policy) -> None:
    def broken(event: RunEvent) -> None:
        raise RuntimeError("slack is down")

    app = create_app(store, policy, tokens=Tokens([TOKEN]), notifier=broken)
    with TestClient(app) as client:
        response = client.post(
            "/v1/events", json={"kind": "run.started", "pipeline": "p", "run_id": "r1"}, headers=AUTH
        )
        assert response.status_code == 200
        metrics = client.get("/metrics", headers=AUTH).text
    assert "headrace_control_room_notifier_failures_total 1" in metrics
    assert store.run("r1") is not None


def test_a_run_end_reported_by_the_exit_handler_and_the_watcher_is_notified_once(
    client: TestClient, received: list[RunEvent]
) -> None:
    end = {"kind": "run.failed", "pipeline": "recipes", "run_id": "r9", "reason": "Error (exit code 1)"}
    first = client.post("/v1/events", json={**end, "source": "exit-handler"}, headers=AUTH)
    again = client.post("/v1/events", json={**end, "source": "watcher"}, headers=AUTH)
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["repeat"], again.json()["repeat"]) == (False, True)
    assert [(e.kind.value, e.run_id) for e in received] == [("run.failed", "r9")]
    assert len(client.get("/v1/runs/r9", headers=AUTH).json()["events"]) == 2


def test_runs_list_newest_first_and_unknown_run_is_404(client: TestClient) -> None:
    for run_id, at in (("old", 100.0), ("new", 200.0)):
        client.post(
            "/v1/events", json={"kind": "run.started", "pipeline": "recipes", "run_id": run_id, "at": at}, headers=AUTH
        )
    assert [r["run_id"] for r in client.get("/v1/runs", headers=AUTH).json()["runs"]] == ["new", "old"]
    missing = client.get("/v1/runs/ghost", headers=AUTH)
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]


def test_metrics_are_prometheus_text_with_counters(client: TestClient) -> None:
    client.post("/v1/sizing", json=sizing_body(), headers=AUTH)
    client.post("/v1/observations", json=observation_body(outcome="oom"), headers=AUTH)
    text = client.get("/metrics", headers=AUTH).text
    assert "# TYPE headrace_control_room_decisions_total counter" in text
    assert 'headrace_control_room_decisions_total{source="rules",target="sagemaker"} 1' in text
    assert 'headrace_control_room_observations_total{outcome="oom"} 1' in text
    assert 'headrace_control_room_requests_total{method="POST",route="/v1/sizing",status="200"} 1' in text
    assert "headrace_control_room_observations_stored 1" in text


def test_openapi_describes_the_versioned_api(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 401
    spec = client.get("/openapi.json", headers=AUTH).json()
    for path in (
        "/v1/sizing",
        "/v1/observations",
        "/v1/events",
        "/v1/runs",
        "/v1/runs/{run_id}",
        "/v1/tasks/{pipeline}/{task}",
    ):
        assert path in spec["paths"], path
    assert "SizingRequest" in str(spec["components"]["schemas"])
