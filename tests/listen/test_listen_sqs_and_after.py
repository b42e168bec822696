"""``headrace listen`` on SQS (through a moto server) and on other pipelines' completions (RabbitMQ)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runs import RunStore
from tests.listen.conftest import Broker, Listening, wait_until

pytestmark = pytest.mark.integration


def runs(state: Path) -> list:
    store = RunStore(state / "runs.db")
    try:
        return store.list_runs()
    finally:
        store.close()


def test_sqs_message_starts_a_run_and_a_bad_one_is_dead_lettered_with_the_reason(
    flow: Callable[[str], str], listen: Callable[..., Listening], aws_env: str, isolated_headrace: Path
) -> None:
    import boto3

    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="eu-west-1")
    name = f"recipes-ready-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    spec = flow(f"""
@step
def work(day: str = "") -> str:
    return day

with Pipeline("daily", triggers=[Queue("sqs://{name}?region=eu-west-1", params={{"run_date": "$.date"}})]) as pipeline:
    work(day=pipeline.run_date)
""")
    listen(spec)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"day": "2026-12-01"}))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"date": "2026-12-01"}))
    wait_until(lambda: runs(isolated_headrace) and runs(isolated_headrace)[0].status == "succeeded", message="run")
    dead_url = wait_until(lambda: _queue_url(sqs, f"{name}-dead"), message="dead-letter queue")
    [dead] = sqs.receive_message(QueueUrl=dead_url, MessageAttributeNames=["All"], WaitTimeSeconds=5)["Messages"]
    assert json.loads(dead["Body"]) == {"day": "2026-12-01"}
    assert dead["MessageAttributes"]["headrace-reason"]["StringValue"] == (
        f"pipeline daily, trigger sqs-{name}: message has no field $.date for parameter run_date"
    )
    [record] = runs(isolated_headrace)
    assert record.params["run_date"] == "2026-12-01"

    def left() -> tuple[str, str]:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]

    wait_until(lambda: left() == ("0", "0"), message="both messages deleted, not just hidden")


def _queue_url(sqs: object, name: str) -> str | None:
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]  # type: ignore[attr-defined,no-any-return]
    except Exception:
        return None


def test_finished_pipeline_publishes_its_completion_and_after_starts_the_next_with_its_day(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    upstream = f"scores-{uuid.uuid4().hex[:6]}"
    spec = flow(f"""
@step
def work(day: str = "") -> str:
    return day

with Pipeline("{upstream}", triggers=[Queue({amqp_url!r}, queue={queue_name!r}, params={{"run_date": "$.date"}})]) as pipeline:
    work(day=pipeline.run_date)

with Pipeline("report", triggers=[After("{upstream}", outcome="succeeded")]) as report:
    work(day=report.run_date)
""")
    listen(spec, spec.replace(":pipeline", ":report"), "--concurrency", "2", env={"HEADRACE_EVENTS_URL": amqp_url})
    broker.publish(queue_name, {"date": "2026-12-10"}, message_id="ready-10")
    wait_until(
        lambda: (
            sorted((r.pipeline, r.status) for r in runs(isolated_headrace))
            == [("report", "succeeded"), (upstream, "succeeded")]
        ),
        timeout=60,
        message="both runs succeeded",
    )
    by_pipeline = {r.pipeline: r for r in runs(isolated_headrace)}
    assert by_pipeline["report"].params["run_date"] == "2026-12-10"
    store = RunStore(isolated_headrace / "runs.db")
    try:
        started_by = store.started_by(by_pipeline["report"].id)
    finally:
        store.close()
    assert started_by == f"after {upstream} succeeded, message completion:{by_pipeline[upstream].id}:succeeded"
