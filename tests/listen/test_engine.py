"""The listener's engine on cases the broker tests cannot stage cheaply. The deliveries here are a
stand-in recording what was answered; the RabbitMQ and SQS suites (test_listen_rabbitmq.py,
test_listen_sqs_and_after.py) cover the same engine against the real brokers."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines import Pipeline, Queue, step
from pipelines.listen import engine
from pipelines.listen.engine import Listener, Subscription
from pipelines.runs import RunStore


@dataclass
class Recorded:
    body: bytes
    message_id: str = "m-1"
    answers: list[str] = field(default_factory=list)

    def ack(self) -> None:
        self.answers.append("ack")

    def dead_letter(self, reason: str) -> None:
        self.answers.append(f"dead: {reason}")

    def release(self) -> None:
        self.answers.append("release")


@step
def work(day: str = "") -> str:
    return day


def subscription() -> Subscription:
    with Pipeline(
        "daily", triggers=[Queue("amqp://mq/", queue="q", params={"run_date": "$.date"}, filter={"$.kind": "recipes"})]
    ) as p:
        work(day=p.run_date)
    return Subscription(p, "flow.py:pipeline", p.triggers[0], "amqp://mq: q")


def never_run(*args: object) -> object:
    raise AssertionError("no run may start")


def test_a_message_the_filter_drops_is_acknowledged_without_a_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    listener = Listener(store, never_run, log=lambda line: None)  # type: ignore[arg-type]
    delivery = Recorded(json.dumps({"kind": "users", "date": "2026-12-01"}).encode())
    listener.receive(subscription(), delivery, lambda fn: fn())
    assert delivery.answers == ["ack"] and store.list_runs() == []
    listener.close()
    store.close()


def test_a_message_whose_run_another_live_listener_runs_goes_back_later_not_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "RECHECK_SECONDS", 0.3)
    store = RunStore(tmp_path / "runs.db")
    sub = subscription()
    store.claim_message("daily-1", trigger="amqp queue q", source=sub.source, message_id="m-1")
    store.create_run("daily-1", pipeline="daily", spec=sub.spec, params={"run_date": "2026-12-01"}, tasks=["work"])
    assert store.get_run("daily-1").pid == os.getpid()  # type: ignore[union-attr]  # alive: this process
    listener = Listener(store, never_run, log=lambda line: None)  # type: ignore[arg-type]
    delivery = Recorded(json.dumps({"kind": "recipes", "date": "2026-12-01"}).encode())
    listener.receive(sub, delivery, lambda fn: fn())
    assert delivery.answers == []
    time.sleep(0.6)
    assert delivery.answers == ["release"]
    listener.close()
    store.close()
