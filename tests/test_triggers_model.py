"""Triggers in the DSL: what they accept, how they read a message, and every rule in one line."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import After, Pipeline, PipelineInvalid, Queue, Schedule, step
from pipelines.triggers import matches, message_params
from steps.runtime.events import completion_message


@step
def load(day: str = "") -> str:
    return day


def pipeline_with(*triggers: Any, schedule: Schedule | None = None) -> Pipeline:
    with Pipeline("scores", schedule=schedule, triggers=list(triggers)) as p:
        load(day=p.run_date)
        p.param("region", "eu")
    return p


def only_problem(pipeline: Pipeline) -> str:
    problems = pipeline.problems()
    assert len(problems) == 1, problems
    with pytest.raises(PipelineInvalid) as raised:
        pipeline.check()
    assert str(raised.value) == problems[0]
    assert "\n" not in problems[0]
    return problems[0]


def test_pipeline_may_have_a_schedule_and_triggers_at_once() -> None:
    p = pipeline_with(
        Queue("amqp://mq.internal:5672/ml", queue="recipes.ready", params={"run_date": "$.date"}),
        Queue("sqs://recipes-ready?region=eu-west-1", params={"run_date": "$.day", "region": "$.where.region"}),
        After("recipe-features", outcome="any"),
        schedule=Schedule("0 3 * * *"),
    )
    assert p.problems() == []
    assert [t.key for t in p.triggers] == ["amqp-recipes-ready", "sqs-recipes-ready", "after-recipe-features"]


def test_unknown_parameter_names_pipeline_trigger_and_field() -> None:
    message = only_problem(pipeline_with(Queue("amqp://mq:5672/", queue="q", params={"rundate": "$.date"})))
    assert message.startswith("pipeline scores, trigger amqp-q: params maps unknown parameter 'rundate'")
    assert "run_date" in message


def test_field_path_must_start_with_dollar() -> None:
    message = only_problem(pipeline_with(Queue("amqp://mq/", queue="q", params={"run_date": "date"})))
    assert (
        message
        == "pipeline scores, trigger amqp-q: params['run_date'] 'date' is not a message field; write it like '$.date'"
    )


def test_password_in_url_is_refused() -> None:
    message = only_problem(pipeline_with(Queue("amqp://user:hunter2@mq/", queue="q")))
    assert "url carries a password" in message and "HEADRACE_BROKER_PASSWORD" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (Queue("kafka://broker/", queue="q"), "scheme 'kafka'; use amqp://, amqps:// or sqs://"),
        (Queue("amqp://mq/"), "queue is not set"),
        (Queue("amqp://mq/", queue="amq.gen"), "queue 'amq.gen' is not a valid queue name"),
        (Queue("amqp:///", queue="q"), "names no host"),
        (Queue("sqs://bad name!"), "names no valid SQS queue"),
        (Queue("sqs://ready", queue="ready"), "queue is for AMQP"),
        (Queue("amqp://mq/", queue="q", filter={"kind": "x"}), "filter field 'kind' is not a message field"),
        (Queue("amqp://mq/", queue="q", filter={"$.kind": 3}), "filter['$.kind'] must be a string"),
        (Queue("amqp://mq/", queue="q", retries=-1), "retries is -1"),
        (After("scores"), "would start itself"),
        (After("recipes", outcome="done"), "outcome 'done' is not one of succeeded, failed, cancelled, any"),
        (After("Recipes"), "pipeline 'Recipes' is not a pipeline name"),
    ],
)
def test_each_broken_rule_is_one_line(trigger: Any, expected: str) -> None:
    message = only_problem(pipeline_with(trigger))
    assert message.startswith(f"pipeline scores, trigger {trigger.key}: "), message
    assert expected in message


def test_something_else_in_triggers_is_named() -> None:
    message = only_problem(pipeline_with("amqp://mq/q"))
    assert message == "pipeline scores: triggers[0] is a str; use Queue(...) or After(...)"


def test_two_triggers_with_one_key_must_be_told_apart() -> None:
    message = only_problem(pipeline_with(Queue("amqp://a/", queue="q"), Queue("amqp://b/", queue="q")))
    assert "trigger amqp-q: defined twice" in message


def test_message_fields_become_parameter_strings() -> None:
    trigger = Queue("amqp://mq/", queue="q", params={"run_date": "$.date", "region": "$.where.name"})
    assert message_params("scores", trigger, {"date": "2026-12-01", "where": {"name": "eu"}}) == {
        "run_date": "2026-12-01",
        "region": "eu",
    }


def test_missing_field_is_one_line_naming_the_field() -> None:
    trigger = Queue("amqp://mq/", queue="q", params={"run_date": "$.date"})
    with pytest.raises(
        ValueError, match=r"^pipeline scores, trigger amqp-q: message has no field \$.date for parameter run_date$"
    ):
        message_params("scores", trigger, {"day": "2026-12-01"})
    with pytest.raises(ValueError, match="is not a JSON object"):
        message_params("scores", trigger, ["2026-12-01"])


def test_filter_keeps_only_matching_messages() -> None:
    trigger = Queue("amqp://mq/", queue="q", filter={"$.kind": ["recipes", "menus"], "$.final": "true"})
    assert matches(trigger, {"kind": "menus", "final": True})
    assert not matches(trigger, {"kind": "menus", "final": False})
    assert not matches(trigger, {"kind": "users", "final": True})
    assert not matches(trigger, {"final": True})


def test_after_listens_to_the_other_pipelines_completion_and_hands_on_its_day() -> None:
    trigger = After("recipe-stream")
    done = completion_message(
        "recipe-stream", "r-1", "2026-12-01", "succeeded", {"score.scores": {"bytes": 10, "rows": 2}}
    )
    assert matches(trigger, done)
    assert not matches(trigger, {**done, "outcome": "failed"})
    assert not matches(trigger, {**done, "pipeline": "other"})
    assert matches(After("recipe-stream", outcome="any"), {**done, "outcome": "failed"})
    assert message_params("report", trigger, done) == {"run_date": "2026-12-01"}
    assert trigger.binding_key == "recipe-stream.succeeded"


def test_a_message_is_claimed_by_one_run_and_a_clashing_run_id_is_refused(tmp_path: Any) -> None:
    from pipelines.runs import RunStore

    store = RunStore(tmp_path / "runs.db")
    try:
        assert store.claim_message("r-1", trigger="amqp queue q", source="amqp://h q", message_id="m1") == "r-1"
        assert store.claim_message("r-2", trigger="amqp queue q", source="amqp://h q", message_id="m1") == "r-1"
        assert store.claim_message("r-1", trigger="amqp queue q", source="amqp://h q", message_id="m2") == ""
        assert store.claim_message("r-3", trigger="amqp queue q", source="amqp://other q", message_id="m1") == "r-3"
        assert store.started_by("r-1") == "amqp queue q, message m1"
        assert store.started_by("r-9") == ""
    finally:
        store.close()
