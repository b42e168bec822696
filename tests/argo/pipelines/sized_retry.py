"""A sized task with retries and no GPU: what an OOM retry on Argo is sized from."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Resources, Retry, step


@step
def extract(day: str) -> dict[str, Any]:
    return {"day": day, "rows": [1, 2, 3]}


@step(sizing="auto", resources=Resources(cpu="500m", memory="2Gi"), retry=Retry(limit=2))
def train(data: Any) -> dict[str, Any]:
    return {"trained_on": data.read_json()["day"]}


with Pipeline("sized-retry") as pipeline:
    train(data=extract(day=pipeline.run_date))
