"""Large pipelines: the scheduler's bookkeeping, the graph checks and the table stay linear.

Speed itself is measured by ``benchmarks/scaling.py``; these tests pin the behaviour that the
linear code paths must keep (order, failure propagation, retries, no recursion limits).
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines import Pipeline, step
from pipelines.local.frontier import Frontier
from pipelines.local.summary import RunSummary, TaskSummary
from pipelines.local.view import MAX_TABLE_ROWS, task_table


@step
def noop(x: object = None) -> int:
    return 1


def test_a_chain_of_five_thousand_tasks_validates_and_orders_without_recursion_limits() -> None:
    with Pipeline("long-chain") as pipeline:
        value = noop(name="t-0")
        for index in range(1, 5000):
            value = noop(x=value, name=f"t-{index}")
    assert pipeline.check() is pipeline
    assert pipeline.topological_order() == [f"t-{i}" for i in range(5000)]


def test_a_cycle_in_a_long_chain_is_still_named() -> None:
    with Pipeline("cycle") as pipeline:
        value = noop(name="t-0")
        for index in range(1, 3000):
            value = noop(x=value, name=f"t-{index}")
    pipeline.tasks["t-0"].after = ("t-2999",)
    problems = pipeline.problems()
    assert any(
        "form a cycle t-0 -> t-1 -> t-2" in line and line.endswith("remove one of these dependencies")
        for line in problems
    )


def test_frontier_frees_a_join_only_when_its_last_input_succeeds() -> None:
    upstream = {"start": (), "a": ("start",), "b": ("start",), "join": ("a", "b")}
    frontier = Frontier(upstream, ["start", "a", "b", "join"], succeeded=[])
    assert frontier.pop_startable(0.0) == "start"
    assert frontier.pop_startable(0.0) is None
    frontier.succeeded("start")
    assert [frontier.pop_startable(0.0), frontier.pop_startable(0.0)] == ["a", "b"]
    frontier.succeeded("b")
    assert frontier.pop_startable(0.0) is None
    frontier.succeeded("a")
    assert frontier.pop_startable(0.0) == "join"


def test_frontier_resumes_from_succeeded_tasks_and_holds_retries_until_due() -> None:
    upstream = {"a": (), "b": ("a",), "c": ("b",)}
    frontier = Frontier(upstream, ["a", "b", "c"], succeeded=["a"])
    assert frontier.pop_startable(0.0) == "b"
    frontier.retry_at("b", 10.0)
    assert frontier.pop_startable(5.0) is None
    assert frontier.next_retry_at() == 10.0
    assert frontier.pop_startable(10.0) == "b"
    assert frontier.descendants("a") == ["b", "c"]


def test_a_thousand_task_table_shows_failures_and_running_tasks_and_counts_the_rest(
    flow: Callable[[str], str],
) -> None:
    summary = RunSummary(run_id="r", pipeline="p")
    for index in range(1000):
        summary.tasks[f"t-{index}"] = TaskSummary(f"t-{index}", status="succeeded")
    summary.tasks["t-500"].status = "failed"
    summary.tasks["t-900"].status = "running"
    table = task_table(summary)
    names = [str(cell) for cell in table.columns[0]._cells]
    assert len(names) == MAX_TABLE_ROWS
    assert "t-500" in names and "t-900" in names
    assert names[-1] == "… 951 more"
    assert str(table.columns[1]._cells[-1]) == "951 succeeded"
