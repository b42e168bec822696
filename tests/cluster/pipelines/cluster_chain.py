"""Three tasks in a chain; each one's output is the next one's input, and each prints a line."""

from __future__ import annotations

from pipelines import Pipeline, step


@step
def numbers(limit: int) -> list[int]:
    print(f"numbers: making {limit}", flush=True)
    return list(range(int(limit)))


@step
def squares(values: list[int]) -> list[int]:
    print(f"squares: got {len(values)} values", flush=True)
    return [v * v for v in values]


@step
def total(values: list[int]) -> dict[str, int]:
    result = {"count": len(values), "sum": sum(values)}
    print(f"total: {result}", flush=True)
    return result


with Pipeline("cluster-chain", params={"limit": 4}) as pipeline:
    total(values=squares(values=numbers(limit=pipeline.param("limit"))))
