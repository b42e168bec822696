"""A scheduled pipeline with a control-room-sized training step and retries with backoff."""

from __future__ import annotations

from typing import Any

from pipelines import Backoff, Pipeline, Resources, Retry, Schedule, step


@step(retry=Retry(limit=3, backoff=Backoff(duration="30s", factor=2, max_duration="1d"), on="transient"))
def extract(day: str) -> Any:
    return day


@step(
    sizing="auto",
    resources=Resources(cpu="2", memory="8Gi", memory_limit="12Gi", cpu_limit="4", gpu=1),
    retry=Retry(limit=2, backoff=Backoff(duration=10, factor=1.5)),
    timeout="2h",
)
def train(data: Any) -> Any:
    return data


@step(outputs=("scores", "metrics"), timeout=900)
def score(model: Any, data: Any) -> dict[str, Any]:
    return {"scores": data, "metrics": {}}


with Pipeline(
    "cron-sized",
    schedule=Schedule(
        ["0 3 * * *", "30 15 * * 1-5"],
        timezone="Asia/Tokyo",
        concurrency="Replace",
        starting_deadline_seconds=600,
        successful_history=5,
        failed_history=2,
    ),
    image="registry.example.com/ml/recipes:1.4.2",
    service_account="headrace-workflow",
    description="Nightly recommendation model",
) as pipeline:
    raw = extract(day=pipeline.run_date)
    model = train(data=raw)
    score(model=model, data=raw)
