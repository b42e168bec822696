"""Every rule of the pipeline model breaks with one line naming pipeline, task and field."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import Backoff, Pipeline, PipelineInvalid, Resources, Retry, Schedule, step
from pipelines.graph import OutputRef


@step
def load(day: str = "") -> str:
    return day


@step
def use(data: Any = None, more: Any = None) -> Any:
    return data


@step(outputs=("model", "metrics"))
def train(data: Any = None) -> dict[str, Any]:
    return {"model": data, "metrics": {}}


@step(outputs=())
def notify(data: Any = None) -> None:
    return None


def only_problem(pipeline: Pipeline) -> str:
    problems = pipeline.problems()
    assert len(problems) == 1, problems
    with pytest.raises(PipelineInvalid) as raised:
        pipeline.check()
    assert str(raised.value) == problems[0]
    return problems[0]


def assert_names(message: str, *parts: str) -> None:
    assert "\n" not in message
    for part in parts:
        assert part in message, f"{part!r} missing from {message!r}"


def test_valid_pipeline_has_no_problems() -> None:
    with Pipeline("fine") as p:
        use(data=load(day=p.run_date))
    assert p.problems() == []
    assert p.check() is p


def test_cycle_is_reported_with_the_tasks_in_order() -> None:
    with Pipeline("loop") as p:
        use(name="a", after=["c"])
        use(name="b", after=["a"])
        use(name="c", after=["b"])
    message = only_problem(p)
    assert_names(message, "pipeline loop", "cycle")
    assert "a -> b -> c -> a" in message or "b -> c -> a -> b" in message or "c -> a -> b -> c" in message


def test_cycle_through_outputs_names_every_task_on_it() -> None:
    with Pipeline("loop-data") as p:
        use(data=OutputRef("second", "result"), name="first")
        use(data=OutputRef("first", "result"), name="second")
    message = only_problem(p)
    assert_names(message, "pipeline loop-data", "cycle", "first", "second")


def test_after_naming_an_unknown_task_lists_the_known_ones() -> None:
    with Pipeline("after-typo") as p:
        load()
        use(after=["lod"])
    message = only_problem(p)
    assert_names(message, "pipeline after-typo", "task use", "after=", "'lod'", "load")


def test_reading_an_unknown_task_names_it() -> None:
    with Pipeline("ghost") as p:
        use(data=OutputRef("missing", "result"))
    assert_names(only_problem(p), "pipeline ghost", "task use", "unknown task 'missing'")


def test_duplicate_task_name_suggests_a_second_name() -> None:
    with Pipeline("twice") as p:
        load()
        load()
    assert_names(only_problem(p), "pipeline twice", "task load", "defined twice", "name=")


def test_task_name_with_capitals_states_the_kubernetes_rule() -> None:
    with Pipeline("caps") as p:
        load(name="Load_Data")
    assert_names(only_problem(p), "pipeline caps", "task Load_Data", "name", "lowercase letters, digits and '-'")


def test_task_name_longer_than_63_characters_is_refused() -> None:
    long_name = "a" * 64
    with Pipeline("long") as p:
        load(name=long_name)
    assert_names(only_problem(p), "pipeline long", f"task {long_name}", "64 characters", "63")


def test_pipeline_name_is_a_kubernetes_name_short_enough_for_cron_suffixes() -> None:
    with Pipeline("My Pipeline") as p:
        load()
    assert_names(only_problem(p), "pipeline My Pipeline", "name", "not a valid Kubernetes name")
    with Pipeline("p" * 53) as p2:
        load()
    assert_names(only_problem(p2), "name", "53 characters", "at most 52")


def test_empty_pipeline_says_to_add_a_step() -> None:
    with Pipeline("empty") as p:
        pass
    assert_names(only_problem(p), "pipeline empty", "no tasks")


def test_reading_a_missing_output_lists_the_outputs_there_are() -> None:
    with Pipeline("outputs") as p:
        model = train()
        use(data=model["weights"])
    assert_names(only_problem(p), "pipeline outputs", "task use", "output 'weights'", "task train", "model, metrics")


def test_passing_a_task_with_several_outputs_asks_to_pick_one() -> None:
    with Pipeline("ambiguous") as p:
        use(data=train())
    assert_names(only_problem(p), "pipeline ambiguous", "task use", "model, metrics", "train['model']")


def test_reading_a_task_without_outputs_suggests_after() -> None:
    with Pipeline("silent") as p:
        use(data=notify())
    assert_names(only_problem(p), "pipeline silent", "task use", "task notify", "has none", "after=")


@pytest.mark.parametrize(
    ("cron", "complaint"),
    [
        ("0 3 * * * *", "6 fields"),
        ("0 3 * *", "4 fields"),
        ("0 3 L * *", "day-of-month"),
        ("0 3 * * 5#2", "day-of-week"),
        ("0 24 * * *", "hour"),
        ("61 3 * * *", "minute"),
        ("0 3 * 13 *", "month"),
        ("0 3 * * 7", "outside 0-6"),
        ("*/0 * * * *", "step of 0"),
        ("30-10 * * * *", "low to high"),
        ("@reboot", "descriptor"),
        ("@every soon", "@every"),
    ],
)
def test_cron_argo_rejects_is_refused_with_the_field_at_fault(cron: str, complaint: str) -> None:
    with Pipeline("nightly", schedule=Schedule(cron)) as p:
        load()
    assert_names(only_problem(p), "pipeline nightly", "schedule.cron", repr(cron), complaint)


@pytest.mark.parametrize("cron", ["0 3 * * *", "*/15 9-17 * * MON-FRI", "0 0 1 JAN,JUL *", "@daily", "@every 1h30m"])
def test_crons_argo_accepts_pass(cron: str) -> None:
    with Pipeline("nightly", schedule=Schedule(cron)) as p:
        load()
    assert p.problems() == []


def test_empty_schedule_list_is_refused() -> None:
    with Pipeline("nightly", schedule=Schedule([])) as p:
        load()
    assert_names(only_problem(p), "pipeline nightly", "schedule.cron", "empty")


def test_unknown_time_zone_names_the_field() -> None:
    with Pipeline("tokyo", schedule=Schedule("0 3 * * *", timezone="Asia/Tokio")) as p:
        load()
    assert_names(only_problem(p), "pipeline tokyo", "timezone", "'Asia/Tokio'", "IANA")


def test_schedule_policy_and_limits_are_checked() -> None:
    schedule = Schedule("0 3 * * *", concurrency="Skip", starting_deadline_seconds=-1, failed_history=-2)
    with Pipeline("limits", schedule=schedule) as p:
        load()
    problems = p.problems()
    assert len(problems) == 3
    assert_names(problems[0], "pipeline limits", "schedule.concurrency", "'Skip'", "Allow, Forbid, Replace")
    assert_names(problems[1], "schedule.starting_deadline_seconds")
    assert_names(problems[2], "schedule.failed_history")


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (Resources(cpu="two"), "resources.cpu"),
        (Resources(cpu="1Gi"), "resources.cpu"),
        (Resources(cpu="0"), "resources.cpu"),
        (Resources(memory="4GB"), "resources.memory"),
        (Resources(memory="500m"), "resources.memory"),
        (Resources(cpu_limit="lots"), "resources.cpu_limit"),
        (Resources(memory="4Gi", memory_limit="2Gi"), "resources.memory_limit"),
        (Resources(gpu=-1), "resources.gpu"),
        (Resources(instance_count=0), "resources.instance_count"),
    ],
)
def test_unparseable_or_impossible_resources_name_the_field(resources: Resources, field: str) -> None:
    with Pipeline("sized") as p:
        load(resources=resources)
    assert_names(only_problem(p), "pipeline sized", "task load", field)


def test_negative_retry_limit_is_refused() -> None:
    with Pipeline("retries") as p:
        load(retry=Retry(limit=-1))
    assert_names(only_problem(p), "pipeline retries", "task load", "retry.limit", "-1", "0 or more")


def test_unknown_retry_condition_lists_the_known_ones() -> None:
    with Pipeline("retries") as p:
        load(retry=Retry(limit=1, on="sometimes"))
    assert_names(only_problem(p), "pipeline retries", "task load", "retry.on", "'sometimes'", "failure")


def test_backoff_that_shrinks_or_cannot_be_read_is_refused() -> None:
    with Pipeline("retries") as p:
        load(retry=Retry(limit=1, backoff=Backoff(duration="soon", factor=0.5)))
    problems = p.problems()
    assert len(problems) == 2
    assert_names(problems[0], "pipeline retries", "task load", "retry.backoff.factor")
    assert_names(problems[1], "pipeline retries", "task load", "retry.backoff.duration", "'soon'")


@pytest.mark.parametrize("timeout", ["forever", "-5m", 0])
def test_timeout_that_is_not_a_positive_duration_is_refused(timeout: Any) -> None:
    with Pipeline("slow") as p:
        load(timeout=timeout)
    assert_names(only_problem(p), "pipeline slow", "task load", "timeout")


def test_using_an_undeclared_parameter_says_how_to_declare_it() -> None:
    with Pipeline("params") as p:
        load(day=p.run_date)
    p.params.pop("run_date")
    assert_names(only_problem(p), "pipeline params", "task load", "unknown parameter 'run_date'", "pipeline.param(")


def test_parameter_name_must_be_an_identifier() -> None:
    with Pipeline("params", params={"batch-size": 10}) as p:
        load()
    assert_names(only_problem(p), "pipeline params", "parameter 'batch-size'")


def test_invalid_label_is_refused() -> None:
    with Pipeline("labelled", labels={"team": "ML platform"}) as p:
        load()
    assert_names(only_problem(p), "pipeline labelled", "label team=", "not a valid Kubernetes label")


def test_sizing_mode_must_be_static_or_auto() -> None:
    with Pipeline("sizing") as p:
        load(sizing="guess")  # type: ignore[arg-type]
    assert_names(only_problem(p), "pipeline sizing", "task load", "sizing 'guess'")


def test_task_names_the_compiler_reserves_are_refused() -> None:
    with Pipeline("reserved") as p:
        load(name="headrace-exit")
    assert_names(only_problem(p), "pipeline reserved", "task headrace-exit", "reserves")


def test_task_named_like_a_sizing_node_of_a_sized_task_is_refused() -> None:
    with Pipeline("clash") as p:
        load(name="train", sizing="auto")
        load(name="size-train")
    assert_names(only_problem(p), "pipeline clash", "task size-train", "sizing node of task train")


def test_output_named_like_a_size_parameter_is_refused() -> None:
    @step(outputs=("table", "table-rows"))
    def split() -> dict[str, Any]:
        return {}

    with Pipeline("suffix") as p:
        split()
    assert_names(only_problem(p), "pipeline suffix", "task split", "output 'table-rows'", "'table'")


def test_inputs_that_map_to_the_same_argo_parameter_are_refused() -> None:
    @step(outputs=("b-c",))
    def first() -> Any:
        return 1

    @step(outputs=("c",))
    def second() -> Any:
        return 2

    with Pipeline("collide") as p:
        first(name="a")
        second(name="a-b")
        use(data=OutputRef("a", "b-c"), more=OutputRef("a-b", "c"))
    assert_names(only_problem(p), "pipeline collide", "task use", "'a-b-c'")


def test_every_problem_is_reported_at_once() -> None:
    with Pipeline("Broken", schedule=Schedule("0 3 * * * *")) as p:
        load(name="Load", retry=Retry(limit=-2), resources=Resources(memory="lots"))
        use(after=["nothing"])
    problems = p.problems()
    assert len(problems) == 6
    assert all("\n" not in line and line.startswith("pipeline Broken") for line in problems)
    with pytest.raises(PipelineInvalid) as raised:
        p.check()
    assert raised.value.problems == problems
    assert str(raised.value).endswith("(and 5 more problems)")
    assert raised.value.exit_code == 2


def test_parameter_named_like_the_sizing_input_is_refused() -> None:
    with Pipeline("params", params={"sizing": "big"}) as p:
        load()
    assert_names(only_problem(p), "pipeline params", "parameter 'sizing'", "reserved")
