"""Sizing never fails a run while a bigger size exists, and new tasks start from evidence.

Issue 18: a task added late, without ``bytes_per_row``, was sized by the rules at 16 GiB for a
true peak near 60 GiB, stepped up one size at a time and ran out of its three attempts.
"""

from __future__ import annotations

import dataclasses

from control_room.catalog import Catalog
from control_room.sizing import Policy
from steps.core.contract import Observation, Outcome, SizingRequest, SizingTarget
from tests.control_room.test_sizing import runs

GIB = 2**30


def memory_of(catalog: Catalog, target: SizingTarget, instance_type: str, count: int = 1) -> int:
    option = catalog.find(target, instance_type, count)
    assert option is not None, instance_type
    return option.total_memory


def features(attempt: int, previous: str | None, retries_left: int | None) -> SizingRequest:
    """Attempt ``attempt`` of the late-added SageMaker task, after an OOM on ``previous`` if given."""
    return SizingRequest(
        "recipes",
        "features",
        "day-60",
        target=SizingTarget.SAGEMAKER,
        input_bytes=12 * 10**9,
        attempt=attempt,
        previous_outcome="oom" if previous else None,
        previous_instance_type=previous,
        retries_left=retries_left,
    )


def test_the_last_attempt_after_an_oom_gets_the_largest_size(policy: Policy, catalog: Catalog) -> None:
    decision = policy.decide(features(3, "ml.r5.2xlarge", retries_left=0))
    largest = max(o.total_memory for o in catalog.for_target(SizingTarget.SAGEMAKER) if o.gpu == 0)
    assert memory_of(catalog, SizingTarget.SAGEMAKER, decision.instance_type) == largest
    assert "the last attempt gets the largest size" in decision.reason


def test_a_retry_with_attempts_left_steps_up_more_than_one_size(policy: Policy, catalog: Catalog) -> None:
    one_step = policy.decide(features(2, "ml.m5.xlarge", retries_left=None))
    planned = policy.decide(features(2, "ml.m5.xlarge", retries_left=1))
    failed = memory_of(catalog, SizingTarget.SAGEMAKER, "ml.m5.xlarge")
    assert memory_of(catalog, SizingTarget.SAGEMAKER, one_step.instance_type) > failed
    assert memory_of(catalog, SizingTarget.SAGEMAKER, planned.instance_type) >= 2 * failed
    assert "1 retry left" in planned.reason


def test_the_first_observation_corrects_a_wrong_declared_bytes_per_row(policy: Policy) -> None:
    [first] = runs("report", [(1e9, 6 * GIB)], "pod.large", SizingTarget.POD)
    history = [dataclasses.replace(first, input_rows=1_000_000)]
    request = SizingRequest(
        "recipes",
        "report",
        "r2",
        target=SizingTarget.POD,
        input_bytes=int(2e9),
        input_rows=2_000_000,
        bytes_per_row=512.0,  # says 0.5 GiB + overhead a million rows; the run before peaked at 6 GiB
    )
    decision = policy.decide(request, history)
    overhead = policy.rules.process_overhead_bytes
    measured = (6 * GIB - overhead) / 1_000_000
    assert decision.predicted_peak_memory_bytes == int(measured * 2_000_000 + overhead)
    assert "measured by 1 run(s) (declared 512 set aside)" in decision.reason


def test_a_new_task_borrows_a_prior_from_its_pipelines_other_tasks(policy: Policy) -> None:
    related = runs("extract", [(2e9, 8 * GIB), (4e9, 15 * GIB)], "pod.2xlarge", SizingTarget.POD)
    request = SizingRequest("recipes", "enrich", "r9", target=SizingTarget.POD, input_bytes=int(4e9))
    decision = policy.decide(request, [], related=lambda: related)
    assert decision.predicted_peak_memory_bytes is not None
    assert decision.predicted_peak_memory_bytes >= 15 * GIB
    assert "borrowed the highest peak per input byte of recipes/{extract}" in decision.reason


def test_related_history_is_not_read_once_the_task_has_its_own(policy: Policy) -> None:
    own = runs("enrich", [(1e9, 2 * GIB)], "pod.large", SizingTarget.POD)

    def never() -> list[Observation]:
        raise AssertionError("related history read although the task has its own")

    request = SizingRequest("recipes", "enrich", "r3", target=SizingTarget.POD, input_bytes=int(1e9))
    assert policy.decide(request, own, related=never).source == "policy"


def test_an_oom_on_a_new_task_is_one_at_most_when_retries_plan_for_the_catalog(
    policy: Policy, catalog: Catalog
) -> None:
    true_peak = 60 * GIB
    history: list[Observation] = []
    ooms = 0
    previous: str | None = None
    for attempt in (1, 2, 3):
        request = features(attempt, previous, retries_left=3 - attempt)
        decision = policy.decide(request, history)
        capacity = memory_of(catalog, SizingTarget.SAGEMAKER, decision.instance_type)
        if capacity >= true_peak:
            break
        ooms += 1
        previous = decision.instance_type
        history.append(
            Observation(
                "recipes",
                "features",
                "day-60",
                attempt,
                Outcome.OOM,
                input_bytes=12 * 10**9,
                target=SizingTarget.SAGEMAKER,
                instance_type=decision.instance_type,
            )
        )
    else:
        raise AssertionError("ran out of attempts while bigger sizes existed")
    assert ooms <= 1
