"""A retry after an OOM goes one size up even when the request does not say the last try failed.

On Argo the sizing node of a retried task is not told how the previous attempt ended; the watcher
records the OOM-killed pod as an observation of the run, and the control room reads it from the
task's history, in-process (embedded) and through the HTTP service alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_room.app import Tokens, create_app
from control_room.catalog import Catalog
from control_room.embedded import EmbeddedControlRoom
from control_room.sizing import Policy
from control_room.store import Store
from steps.core.contract import Observation, Outcome, SizingRequest, SizingTarget, to_dict
from tests.control_room.conftest import TOKEN

GIB = 2**30


def request(run_id: str = "wf-1", attempt: int = 1) -> SizingRequest:
    return SizingRequest(
        "recipes",
        "extract",
        run_id,
        input_bytes=200_000_000,
        input_rows=1_000_000,
        attempt=attempt,
        bytes_per_row=1000.0,
    )


def oom_of(decision_memory: str, run_id: str = "wf-1", attempt: int = 1) -> Observation:
    """What the watcher records for an OOM-killed pod: its memory limit, no input size."""
    return Observation(
        "recipes",
        "extract",
        run_id,
        attempt,
        Outcome.OOM,
        target=SizingTarget.POD,
        memory=decision_memory,
        reason="OOMKilled (exit code 137)",
    )


def memory_of(catalog: Catalog, instance_type: str) -> int:
    option = catalog.find(SizingTarget.POD, instance_type)
    assert option is not None, instance_type
    return option.total_memory


def test_an_oom_of_this_run_makes_the_next_request_one_size_up_with_the_reason(
    policy: Policy, catalog: Catalog
) -> None:
    first = policy.decide(request())
    assert first.memory is not None
    retry = policy.decide(request(), [oom_of(first.memory)])
    assert memory_of(catalog, retry.instance_type) > memory_of(catalog, first.instance_type)
    assert first.memory == "2Gi"
    assert "attempt 1 of run wf-1 ran out of memory on 2 GiB" in retry.reason


def test_an_oom_of_another_run_or_an_attempt_that_then_succeeded_does_not_escalate(policy: Policy) -> None:
    first = policy.decide(request())
    assert first.memory is not None
    other_run = policy.decide(request(), [oom_of(first.memory, run_id="wf-0")])
    assert other_run.instance_type == first.instance_type
    succeeded = dataclasses.replace(oom_of(first.memory, attempt=2), outcome=Outcome.SUCCEEDED)
    after_success = policy.decide(request(), [oom_of(first.memory), succeeded])
    assert after_success.instance_type == first.instance_type
    assert "ran out of memory" not in after_success.reason


def test_an_explicit_previous_outcome_still_wins_over_history(policy: Policy, catalog: Catalog) -> None:
    first = policy.decide(request())
    assert first.memory is not None
    explicit = SizingRequest(
        **{**to_dict(request(attempt=2)), "previous_outcome": "oom", "previous_instance_type": first.instance_type}
    )
    retry = policy.decide(explicit, [oom_of(first.memory)])
    assert memory_of(catalog, retry.instance_type) > memory_of(catalog, first.instance_type)
    assert f"attempt 1 ran out of memory on {first.instance_type}" in retry.reason


def test_the_embedded_control_room_escalates_from_the_stored_oom_of_the_run(
    store: Store, policy: Policy, catalog: Catalog
) -> None:
    room = EmbeddedControlRoom(store, policy)
    first = room.size(request())
    assert first.memory is not None
    room.observe(oom_of(first.memory))
    second = room.size(request(attempt=2))
    assert memory_of(catalog, second.instance_type) > memory_of(catalog, first.instance_type)
    assert "ran out of memory" in second.reason
    # a second OOM at the bigger size escalates again: each retry learns the new floor
    assert second.memory is not None
    room.observe(oom_of(second.memory, attempt=2))
    third = room.size(request(attempt=3))
    assert memory_of(catalog, third.instance_type) > memory_of(catalog, second.instance_type)
    stored = store.decisions(pipeline="recipes", task="extract", run_id="wf-1")
    assert sorted(d["attempt"] for d in stored) == [1, 2, 3]


@pytest.fixture
def client(store: Store, policy: Policy) -> Iterator[TestClient]:
    with TestClient(create_app(store, policy, tokens=Tokens([TOKEN]))) as test_client:
        yield test_client


def test_the_service_escalates_a_request_without_previous_outcome_after_an_observed_oom(
    client: TestClient, catalog: Catalog
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body: dict[str, Any] = to_dict(request())
    first = client.post("/v1/sizing", json=body, headers=auth).json()
    assert client.post("/v1/observations", json=to_dict(oom_of(first["memory"])), headers=auth).status_code < 300
    retry = client.post("/v1/sizing", json={**body, "attempt": 2}, headers=auth).json()
    assert memory_of(catalog, retry["instance_type"]) > memory_of(catalog, first["instance_type"])
    assert "attempt 1 of run wf-1 ran out of memory" in retry["reason"]
