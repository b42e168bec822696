"""Fan-out/fan-in: one source, three parallel feature builders, one join with explicit after=."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Retry, step


@step
def source(limit: int) -> list[int]:
    return list(range(limit))


@step
def features(data: Any, kind: str) -> Any:
    return data


@step(retry=Retry(limit=2))
def join(left: Any, middle: Any, right: Any) -> Any:
    return [left, middle, right]


@step
def publish(table: Any) -> Any:
    return table


with Pipeline("fan-out-in", params={"limit": 100, "dry_run": False}, namespace="ml") as pipeline:
    data = source(limit=pipeline.param("limit"))
    left = features(data, kind="left", name="features-left")
    middle = features(data, kind="middle", name="features-middle")
    right = features(data, kind="right", name="features-right")
    joined = join(left=left, middle=middle, right=right)
    publish(table=joined, after=["features-left"])
