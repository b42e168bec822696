"""``headrace listen`` against the real RabbitMQ: each guarantee of issue 17, one test each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.runs import RunStore
from tests.listen.conftest import Broker, Listening, wait_until

pytestmark = pytest.mark.integration


def daily(
    queue: str, url: str, *, seconds: float = 0.0, fail: bool = False, retries: int = 0, task_retries: int = 0
) -> str:
    return f"""
@step
def work(day: str = "") -> str:
    time.sleep({seconds})
    if {fail!r}:
        raise RuntimeError("the source table is empty")
    Path(os.environ["HEADRACE_STATE_DIR"]).parent.joinpath("days.log").open("a").write(day + "\\n")
    return day

with Pipeline(
    "daily",
    triggers=[Queue({url!r}, queue={queue!r}, params={{"run_date": "$.date"}}, retries={retries})],
) as pipeline:
    work(day=pipeline.run_date, retry=Retry(limit={task_retries}, backoff=Backoff(duration=0.1)))
"""


def runs(state: Path) -> list:
    store = RunStore(state / "runs.db")
    try:
        return store.list_runs()
    finally:
        store.close()


def test_message_starts_a_run_with_its_fields_as_parameters_and_runs_show_says_so(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    spec = flow(daily(queue_name, amqp_url))
    listen(spec)
    broker.publish(queue_name, {"date": "2026-12-01"}, message_id="ready-1")
    wait_until(lambda: runs(isolated_headrace) and runs(isolated_headrace)[0].status == "succeeded", message="run")
    [record] = runs(isolated_headrace)
    assert record.params["run_date"] == "2026-12-01"
    wait_until(lambda: broker.count(queue_name) == 0, message="queue empty")
    shown = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "runs", "show", record.id],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "300"},
    ).stdout
    assert f"started by amqp queue {queue_name}, message ready-1" in " ".join(shown.split())


def test_message_is_acknowledged_only_after_its_run_is_recorded_and_a_redelivery_resumes_the_same_run(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    spec = flow(daily(queue_name, amqp_url, seconds=3))
    first = listen(spec)
    broker.publish(queue_name, {"date": "2026-12-02"}, message_id="ready-2")
    first.wait_for("starts run")
    wait_until(lambda: runs(isolated_headrace), message="run recorded")
    time.sleep(1)  # its task is running now
    first.process.kill()  # the listener dies while the run goes on: nothing was acknowledged
    first.process.wait(10)
    assert wait_until(lambda: broker.count(queue_name) == 1, message="message back in the queue")
    second = listen(spec)
    second.wait_for("resumes run")
    wait_until(lambda: runs(isolated_headrace)[0].status == "succeeded", message="run succeeded")
    wait_until(lambda: broker.count(queue_name) == 0, message="queue empty")
    assert len(runs(isolated_headrace)) == 1


def test_redelivered_message_with_the_same_id_never_starts_a_second_run(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    listening = listen(flow(daily(queue_name, amqp_url)))
    broker.publish(queue_name, {"date": "2026-12-03"}, message_id="ready-3")
    wait_until(
        lambda: runs(isolated_headrace) and runs(isolated_headrace)[0].status == "succeeded", message="first run"
    )
    broker.publish(queue_name, {"date": "2026-12-03"}, message_id="ready-3")
    listening.wait_for("already ran as run")
    wait_until(lambda: broker.count(queue_name) == 0, message="queue empty")
    assert len(runs(isolated_headrace)) == 1
    days = (isolated_headrace.parent / "days.log").read_text().split()
    assert days == ["2026-12-03"]


def test_message_with_bad_parameters_is_dead_lettered_with_the_reason_and_the_listener_goes_on(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    listening = listen(flow(daily(queue_name, amqp_url)))
    broker.publish(queue_name, {"day": "2026-12-04"}, message_id="no-date")
    broker.publish(queue_name, {"date": "the fourth"}, message_id="bad-date")
    broker.publish(queue_name, b"not json", message_id="junk")
    broker.publish(queue_name, {"date": "2026-12-04"}, message_id="good")
    wait_until(lambda: runs(isolated_headrace) and runs(isolated_headrace)[0].status == "succeeded", message="good run")
    dead = wait_until(lambda: broker.take_all(f"{queue_name}.dead"), message="dead letters")
    while len(dead) < 3:
        dead += wait_until(lambda: broker.take_all(f"{queue_name}.dead"), message="more dead letters")
    reasons = [headers["x-headrace-reason"] for _, headers in dead]
    trigger = f"amqp-{queue_name.replace('.', '-')}"
    assert reasons[0] == f"pipeline daily, trigger {trigger}: message has no field $.date for parameter run_date"
    assert reasons[1].startswith(f"pipeline daily, trigger {trigger}: ") and "the fourth" in reasons[1]
    assert reasons[2].startswith(f"pipeline daily, trigger {trigger}: message is not JSON")
    assert all("\n" not in reason for reason in reasons)
    assert [json.loads(body) for body, _ in dead[:2]] == [{"day": "2026-12-04"}, {"date": "the fourth"}]
    assert len(runs(isolated_headrace)) == 1
    assert listening.process.poll() is None


def test_failed_run_is_retried_per_its_policy_then_dead_lettered(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    listen(flow(daily(queue_name, amqp_url, fail=True, retries=1, task_retries=1)))
    broker.publish(queue_name, {"date": "2026-12-05"}, message_id="doomed")
    [(_body, headers)] = wait_until(lambda: broker.take_all(f"{queue_name}.dead"), message="dead letter")
    [record] = runs(isolated_headrace)
    assert record.status == "failed"
    reason = headers["x-headrace-reason"]
    assert reason.startswith(
        f"pipeline daily, trigger amqp-{queue_name.replace('.', '-')}: run {record.id} failed: task work: "
    )
    assert reason.endswith("RuntimeError: the source table is empty")
    store = RunStore(isolated_headrace / "runs.db")
    try:
        attempts = store.attempts(record.id)
    finally:
        store.close()
    assert [a.attempt for a in attempts] == [1, 2, 3, 4]  # the task's own retry, in the run and its one resume
    assert broker.count(queue_name) == 0


def test_concurrency_bounds_parallel_runs(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    listen(flow(daily(queue_name, amqp_url, seconds=1.5)), "--concurrency", "2")
    for day in range(1, 6):
        broker.publish(queue_name, {"date": f"2026-11-0{day}"}, message_id=f"day-{day}")
    wait_until(
        lambda: len(runs(isolated_headrace)) == 5 and all(r.status == "succeeded" for r in runs(isolated_headrace)),
        timeout=60,
        message="five runs",
    )
    spans = [(r.started, r.finished) for r in runs(isolated_headrace)]
    most = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert most == 2


def test_sigterm_takes_no_more_messages_and_lets_the_running_run_finish(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    listening = listen(flow(daily(queue_name, amqp_url, seconds=2)))
    broker.publish(queue_name, {"date": "2026-12-06"}, message_id="before")
    listening.wait_for("starts run")
    listening.process.send_signal(signal.SIGTERM)
    listening.wait_for("stopping")
    broker.publish(queue_name, {"date": "2026-12-07"}, message_id="after")
    assert listening.process.wait(30) == 0
    [record] = runs(isolated_headrace)
    assert (record.status, record.params["run_date"]) == ("succeeded", "2026-12-06")
    assert broker.count(queue_name) == 1  # the later message waits for the next listener


def test_second_sigterm_exits_at_once_and_hands_the_message_back_for_the_next_listener_to_resume(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    isolated_headrace: Path,
) -> None:
    spec = flow(daily(queue_name, amqp_url, seconds=4))
    first = listen(spec)
    broker.publish(queue_name, {"date": "2026-12-11"}, message_id="interrupted")
    first.wait_for("starts run")
    wait_until(lambda: runs(isolated_headrace), message="run recorded")
    first.process.send_signal(signal.SIGTERM)
    first.wait_for("stopping")
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(10) == 130
    wait_until(lambda: broker.count(queue_name) == 1, message="message handed back")
    second = listen(spec)
    second.wait_for("resumes run")
    wait_until(lambda: runs(isolated_headrace)[0].status == "succeeded", message="run resumed to success")
    assert len(runs(isolated_headrace)) == 1


def test_closed_broker_connection_reconnects_with_backoff_and_loses_nothing(
    flow: Callable[[str], str],
    listen: Callable[..., Listening],
    broker: Broker,
    queue_name: str,
    amqp_url: str,
    vhost: str,
    isolated_headrace: Path,
) -> None:
    listening = listen(flow(daily(queue_name, amqp_url, seconds=3)))
    broker.publish(queue_name, {"date": "2026-12-08"}, message_id="during")
    listening.wait_for("starts run")
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "--vhost", vhost, "test restart"], check=True, timeout=60
    )
    listening.wait_for("reconnecting")
    listening.wait_for("consuming", count=2, timeout=60)
    broker.publish(queue_name, {"date": "2026-12-09"}, message_id="later")
    wait_until(
        lambda: (
            sorted(r.params["run_date"] for r in runs(isolated_headrace) if r.status == "succeeded")
            == ["2026-12-08", "2026-12-09"]
        ),
        timeout=60,
        message="both runs",
    )
    wait_until(lambda: broker.count(queue_name) == 0, message="queue empty")
    time.sleep(1)
    assert len(runs(isolated_headrace)) == 2
