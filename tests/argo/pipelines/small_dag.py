"""A small DAG: extract, then clean, then report; the shape most pipelines start from."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Resources, step


@step(resources=Resources(cpu="500m", memory="1Gi"))
def extract(day: str) -> list[dict[str, Any]]:
    return [{"day": day, "value": 1}]


@step
def clean(rows: Any) -> Any:
    return rows


@step(outputs=("summary", "details"))
def report(rows: Any) -> dict[str, Any]:
    return {"summary": {"rows": 1}, "details": rows}


with Pipeline("small-dag", labels={"team": "ml"}) as pipeline:
    raw = extract(day=pipeline.run_date)
    cleaned = clean(rows=raw)
    report(rows=cleaned)
