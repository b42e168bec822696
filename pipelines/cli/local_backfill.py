"""``headrace backfill --local``: run a range of days here, sized by the control room, then show
what the sizing did per task and day (see :mod:`pipelines.backfill_report`).

The runs go one after another (``--parallel`` more at a time) through the same control room a
``headrace run`` uses, so day N is sized from days 1..N-1: the declared guess first, the learned
size once the history suffices, an OOM escalated on the retry. Progress is a bar and one line per
day on a terminal, the day lines alone otherwise.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import typer

from pipelines.cli.common import console
from pipelines.cli.output import print_table

if TYPE_CHECKING:
    from pipelines.backfill import BackfillResult, PlannedRun
    from pipelines.graph import Pipeline
    from steps.core.settings import Settings


def run_local_backfill(
    pipeline: Pipeline, spec: str, runs: list[PlannedRun], settings: Settings, params: dict[str, str], parallel: int
) -> None:
    """Run every planned day here, print a line per day, then the sizing table and its totals."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipelines.backfill import LocalExecutor, backfill
    from pipelines.backfill_report import COLUMNS, report, table_rows, totals
    from pipelines.cli.local import _close, _control_room, _notifier

    if not runs:
        console.print(f"pipeline {pipeline.name}: no scheduled time in the range", highlight=False)
        return
    notifier = _notifier(settings, pipeline)
    room = _control_room(settings, notifier)
    counts = {"submitted": 0, "skipped": 0, "failed": 0, "succeeded": 0}
    results: list[BackfillResult] = []
    started: dict[str, float] = {}
    progress = Progress(
        TextColumn("[bold]backfill[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    bar = progress.add_task(pipeline.name, total=len(runs))

    def on_start(run: PlannedRun) -> None:
        started[run.run_date] = time.monotonic()
        progress.update(bar, description=f"{pipeline.name} {run.run_date}")

    def on_done(result: BackfillResult) -> None:
        counts[result.status] += 1
        results.append(result)
        took = time.monotonic() - started[result.run_date] if result.run_date in started else None
        detail = f" ({result.detail})" if result.detail else ""
        timing = f" in {took:.1f}s" if took is not None and result.status != "skipped" else ""
        colour = {"failed": "red", "skipped": "dim", "succeeded": "green"}.get(result.status, "cyan")
        progress.console.print(
            f"{result.run_date}: [{colour}]{result.status}[/] {result.run_id}{timing}{detail}",
            highlight=False,
            soft_wrap=True,
        )
        progress.advance(bar)

    executor = LocalExecutor(pipeline, spec, settings, params, control_room=room, on_start=on_start)
    began = time.monotonic()
    try:
        with progress:
            backfill(runs, executor, parallel=parallel, progress=on_done)
        days = report(executor.store, pipeline, [(r.run_date, r.run_id) for r in results if r.run_id], settings)
    finally:
        executor.close()
        _close(room, notifier)
    if days:
        print_table(f"sizing of {pipeline.name}, per task and day", COLUMNS, table_rows(days))
        console.print(totals(days), highlight=False, soft_wrap=True)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    console.print(f"pipeline {pipeline.name}: {summary} in {time.monotonic() - began:.1f}s", highlight=False)
    if counts["failed"]:
        raise typer.Exit(1)
