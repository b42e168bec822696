"""The sizing policy: pure decisions from an input size, the catalog, the rules and history."""

from __future__ import annotations

import dataclasses
import re

from control_room.catalog import Catalog, Rules
from control_room.fits import fit_log
from control_room.sizing import Policy
from steps.core.contract import Observation, Outcome, SizingRequest, SizingTarget

GIB = 2**30


def runs(
    task: str,
    sizes_and_peaks: list[tuple[float, float]],
    instance_type: str,
    target: SizingTarget,
    seconds_per_gb: float = 60.0,
) -> list[Observation]:
    return [
        Observation(
            pipeline="recipes",
            task=task,
            run_id=f"r{i}",
            attempt=1,
            outcome=Outcome.SUCCEEDED,
            input_bytes=int(size),
            target=target,
            instance_type=instance_type,
            duration_seconds=30 + seconds_per_gb * size / 1e9,
            peak_memory_bytes=int(peak),
        )
        for i, (size, peak) in enumerate(sizes_and_peaks)
    ]


def linear_history(
    task: str = "train", target: SizingTarget = SizingTarget.SAGEMAKER, instance: str = "ml.m5.xlarge"
) -> list[Observation]:
    # peak = 0.5 GiB + 2.5 x input, five runs from 1 to 5 GB
    return runs(task, [(g * 1e9, 0.5 * GIB + 2.5 * g * 1e9) for g in (1, 2, 3, 4, 5)], instance, target)


def test_unknown_task_without_history_or_factor_gets_the_catalogs_safe_default(catalog: Catalog) -> None:
    policy = Policy(catalog, Rules(rules=()))
    decision = policy.decide(SizingRequest("recipes", "mystery", "r1", input_bytes=3_000_000_000))
    assert decision.source == "default"
    assert decision.instance_type == "pod-2-8Gi"
    assert (decision.cpu, decision.memory) == ("2", "8Gi")
    assert "no history and no bytes_per_row for recipes/mystery" in decision.reason
    assert "safe default" in decision.reason


def test_unknown_sagemaker_task_with_declared_instance_keeps_it_when_no_rule_matches(catalog: Catalog) -> None:
    policy = Policy(catalog, Rules(rules=()))
    request = SizingRequest(
        "recipes", "train", "r1", target=SizingTarget.SAGEMAKER, declared={"instance_type": "ml.r5.2xlarge"}
    )
    decision = policy.decide(request)
    assert (decision.instance_type, decision.source) == ("ml.r5.2xlarge", "default")
    assert "declared size" in decision.reason


def test_rules_map_the_input_size_to_a_size_until_history_exists(policy: Policy) -> None:
    small = policy.decide(SizingRequest("recipes", "score", "r1", target=SizingTarget.GLUE, input_bytes=500_000_000))
    large = policy.decide(SizingRequest("recipes", "score", "r1", target=SizingTarget.GLUE, input_bytes=30 * GIB))
    assert (small.instance_type, small.instance_count, small.source) == ("G.1X", 2, "rules")
    assert (large.instance_type, large.instance_count) == ("G.2X", 20)
    assert "rule for glue inputs <= 50 GiB (rules.yaml)" in large.reason


def test_declared_bytes_per_row_sizes_the_first_run(policy: Policy) -> None:
    request = SizingRequest(
        "recipes", "featurize", "r1", input_bytes=3_000_000_000, input_rows=10_000_000, bytes_per_row=1000
    )
    decision = policy.decide(request)
    predicted = 1000 * 10_000_000 + 256 * 2**20
    assert decision.source == "policy"
    assert decision.predicted_peak_memory_bytes == predicted
    # cheapest pod shape holding 1.3 x 9.56 GiB = 12.4 GiB: 16Gi with the fewest vCPUs allowed (2)
    assert (decision.cpu, decision.memory) == ("2", "16Gi")
    assert "declared 1000 bytes/row x 10,000,000 rows" in decision.reason


def test_the_declared_reason_says_the_process_overhead_its_sum_adds_up(policy: Policy) -> None:
    request = SizingRequest("recipes", "report", "r1", input_bytes=40_000, input_rows=4_000, bytes_per_row=512)
    decision = policy.decide(request)
    # 512 x 4,000 = 2,048,000 B (2 MiB), plus 256 MiB of process overhead: 258 MiB
    assert "declared 512 bytes/row x 4,000 rows = 2 MiB + 256 MiB process overhead = 258 MiB" in decision.reason


def test_learned_policy_picks_the_cheapest_size_that_fits_with_headroom(policy: Policy, catalog: Catalog) -> None:
    history = linear_history()
    request = SizingRequest("recipes", "train", "r9", target=SizingTarget.SAGEMAKER, input_bytes=4_200_000_000)
    decision = policy.decide(request, history)
    expected_peak = 0.5 * GIB + 2.5 * 4.2e9
    assert decision.source == "policy"
    assert decision.predicted_peak_memory_bytes is not None and decision.predicted_cost_usd is not None
    assert abs(decision.predicted_peak_memory_bytes - expected_peak) / expected_peak < 0.05
    chosen = catalog.find(SizingTarget.SAGEMAKER, decision.instance_type)
    assert chosen is not None and chosen.total_memory >= 1.3 * expected_peak * 0.98
    durations = policy.duration_model(history)
    for option in catalog.for_target(SizingTarget.SAGEMAKER):
        seconds = durations.predict(request.input_bytes, option)
        assert seconds is not None
        if option.gpu == 0 and option.total_memory >= 1.3 * expected_peak * 1.02:
            assert option.total_hourly * seconds / 3600 >= decision.predicted_cost_usd - 1e-4, option


def test_reason_is_one_line_with_input_learned_peak_size_price_and_duration(policy: Policy) -> None:
    request = SizingRequest("recipes", "train", "r9", target=SizingTarget.SAGEMAKER, input_bytes=4_200_000_000)
    reason = policy.decide(request, linear_history()).reason
    assert "\n" not in reason
    assert reason.startswith("3.9 GiB input; learned peak ")
    assert "from 5 runs on ml.m5.xlarge (R² " in reason
    assert "is the cheapest that fits with 30% headroom: $" in reason
    assert re.search(r", ~(\d+(\.\d)?s|\d+m \d\ds)$", reason), reason


def test_oom_retry_goes_one_size_up_from_the_instance_that_failed(policy: Policy, catalog: Catalog) -> None:
    history = linear_history()
    first = policy.decide(
        SizingRequest("recipes", "train", "r9", target=SizingTarget.SAGEMAKER, input_bytes=4_200_000_000), history
    )
    failed = catalog.find(SizingTarget.SAGEMAKER, first.instance_type)
    retry = policy.decide(
        SizingRequest(
            "recipes",
            "train",
            "r9",
            target=SizingTarget.SAGEMAKER,
            input_bytes=4_200_000_000,
            attempt=2,
            previous_outcome="oom",
            previous_instance_type=first.instance_type,
        ),
        history,
    )
    bigger = catalog.find(SizingTarget.SAGEMAKER, retry.instance_type)
    assert failed is not None and bigger is not None
    assert bigger.total_memory > failed.total_memory
    assert f"attempt 1 ran out of memory on {first.instance_type}" in retry.reason


def test_an_oom_observation_raises_the_memory_floor_for_later_runs(policy: Policy, catalog: Catalog) -> None:
    history = linear_history()
    request = SizingRequest("recipes", "train", "r10", target=SizingTarget.SAGEMAKER, input_bytes=4_000_000_000)
    before = policy.decide(request, history)
    oom = Observation(
        "recipes",
        "train",
        "r9",
        1,
        Outcome.OOM,
        input_bytes=4_000_000_000,
        target=SizingTarget.SAGEMAKER,
        instance_type="ml.m5.4xlarge",
    )  # 64 GiB was not enough for 4 GB: far above what the fit says
    after = policy.decide(request, [*history, oom])
    assert before.predicted_peak_memory_bytes is not None and after.predicted_peak_memory_bytes is not None
    assert after.predicted_peak_memory_bytes > 64 * GIB > before.predicted_peak_memory_bytes
    chosen = catalog.find(SizingTarget.SAGEMAKER, after.instance_type)
    assert chosen is not None and chosen.total_memory > 64 * GIB
    assert "raised to" in after.reason and "OOM on ml.m5.4xlarge at 3.7 GiB" in after.reason


def test_oom_retry_without_history_goes_one_rule_size_up(policy: Policy, catalog: Catalog) -> None:
    request = SizingRequest(
        "recipes",
        "extract",
        "r1",
        input_bytes=800_000_000,
        attempt=2,
        previous_outcome="oom",
        previous_instance_type="pod-1-4Gi",
    )
    decision = policy.decide(request)
    option = catalog.find(SizingTarget.POD, decision.instance_type)
    assert option is not None and option.total_memory > 4 * GIB


def test_a_deadline_rules_out_sizes_that_are_too_slow(policy: Policy) -> None:
    history = linear_history()
    base = SizingRequest("recipes", "train", "r9", target=SizingTarget.SAGEMAKER, input_bytes=4_000_000_000)
    relaxed = policy.decide(base, history)
    assert relaxed.predicted_duration_seconds is not None
    tight = policy.decide(dataclasses.replace(base, deadline_seconds=relaxed.predicted_duration_seconds * 0.6), history)
    assert tight.predicted_duration_seconds is not None
    assert tight.predicted_duration_seconds <= relaxed.predicted_duration_seconds * 0.6
    assert "deadline" in tight.reason


def test_an_impossible_deadline_gets_the_fastest_size_that_fits_and_says_so(policy: Policy) -> None:
    request = SizingRequest(
        "recipes", "train", "r9", target=SizingTarget.SAGEMAKER, input_bytes=4_000_000_000, deadline_seconds=1
    )
    decision = policy.decide(request, linear_history())
    assert "no option meets the 1s deadline" in decision.reason
    assert "is the fastest that fits" in decision.reason


def test_a_declared_gpu_keeps_the_choice_among_gpu_instances(policy: Policy, catalog: Catalog) -> None:
    request = SizingRequest(
        "recipes",
        "train",
        "r9",
        target=SizingTarget.SAGEMAKER,
        input_bytes=4_000_000_000,
        declared={"instance_type": "ml.g4dn.xlarge"},
    )
    decision = policy.decide(request, linear_history(instance="ml.g4dn.xlarge"))
    chosen = catalog.find(SizingTarget.SAGEMAKER, decision.instance_type)
    assert chosen is not None and chosen.gpu >= 1


def test_one_odd_run_does_not_bend_the_memory_fit(policy: Policy) -> None:
    steady = [(g * 1e9, 2.0 * g * 1e9) for g in (1, 2, 3, 4, 5, 6, 7, 8)]
    odd = [(3e9, 40 * GIB)]  # one run that used 7x its usual memory (a leak, a bad day)
    fit = fit_log([s for s, _ in steady + odd], [p for _, p in steady + odd])
    assert fit is not None and abs(fit.slope - 1.0) < 0.05
    assert abs(fit.predict(10e9) - 20e9) / 20e9 < 0.05


def test_a_spike_beyond_history_is_predicted_to_grow_at_least_linearly(policy: Policy) -> None:
    flat = runs("extract", [(g * 1e9, 4 * GIB + 0.05 * g * 1e9) for g in (1, 2, 3, 4)], "pod-2-8Gi", SizingTarget.POD)
    decision = policy.decide(SizingRequest("recipes", "extract", "r9", input_bytes=40_000_000_000), flat)
    largest_seen = 4 * GIB + 0.05 * 4e9
    assert decision.predicted_peak_memory_bytes is not None
    assert decision.predicted_peak_memory_bytes >= largest_seen * 10 * 0.99


def test_glue_decisions_name_the_worker_type_and_count(policy: Policy) -> None:
    history = runs("score", [(g * 1e9, 8 * GIB + 4 * g * 1e9) for g in (1, 2, 3, 4)], "G.1X", SizingTarget.GLUE)
    history = [dataclasses.replace(o, instance_count=5) for o in history]
    decision = policy.decide(
        SizingRequest("recipes", "score", "r9", target=SizingTarget.GLUE, input_bytes=12e9), history
    )  # type: ignore[arg-type]
    assert decision.instance_type.startswith("G.") and decision.instance_count >= 2
    assert decision.cpu is None and decision.memory is None
    assert f"{decision.instance_count}x {decision.instance_type}" in decision.reason


def test_unknown_input_size_falls_back_to_default_even_with_rules(policy: Policy) -> None:
    decision = policy.decide(SizingRequest("recipes", "extract", "r1"))
    assert decision.source == "default"
    assert decision.reason.startswith("input size unknown;")


def test_a_glue_oom_retry_gets_more_memory_than_all_the_workers_that_failed(policy: Policy, catalog: Catalog) -> None:
    request = SizingRequest(
        "recipes",
        "score",
        "r1",
        target=SizingTarget.GLUE,
        input_bytes=5_000_000_000,
        attempt=2,
        previous_outcome="oom",
        previous_instance_type="G.1X",
        previous_instance_count=10,
    )
    decision = policy.decide(request)
    chosen = catalog.find(SizingTarget.GLUE, decision.instance_type, decision.instance_count)
    assert chosen is not None and chosen.total_memory > 10 * 16 * GIB
    assert "attempt 1 ran out of memory on 10x G.1X" in decision.reason


def test_a_predicted_cost_of_a_seconds_long_task_keeps_its_significant_digits(policy: Policy) -> None:
    history = [
        Observation("p", "quick", f"r{i}", 1, Outcome.SUCCEEDED, input_bytes=1000 * i, instance_type="pod-500m-512Mi")
        for i in range(1, 6)
    ]
    history = [dataclasses.replace(o, duration_seconds=2.0, peak_memory_bytes=150 * 2**20, cpu="500m") for o in history]
    decision = policy.decide(SizingRequest("p", "quick", "r9", input_bytes=3000), history)
    assert decision.predicted_cost_usd is not None and 0 < decision.predicted_cost_usd < 0.0001
