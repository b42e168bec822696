"""The rich view of a local run: a task table that updates while the run goes on, and the summary.

The view only reads the :class:`~pipelines.local.summary.RunSummary` the runner updates; it is
refreshed by rich's own thread, so a slow terminal never slows the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipelines.local.summary import RunSummary, TaskSummary
from pipelines.plain import plain_lines, plural
from steps.core.display import format_bytes, format_duration

STYLES = {
    "pending": "dim",
    "running": "bold cyan",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "upstream-failed": "red",
    "cancelled": "magenta",
    "not-run": "dim",
}


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else format_duration(seconds)


def _size(task: TaskSummary) -> str:
    sizing = task.sizing
    if sizing is None:
        return ""
    parts = [p for p in (sizing.instance_type, sizing.memory and f"mem {sizing.memory}") if p]
    if sizing.instance_count > 1:
        parts.append(f"x{sizing.instance_count}")
    return " ".join(parts) + (" (declared)" if sizing.source == "declared" else "")


def _out(task: TaskSummary) -> str:
    if not task.outputs:
        return ""
    rows = task.output_rows
    text = format_bytes(task.output_bytes)
    return f"{plural(rows, 'row')}, {text}" if rows is not None else text


def _progress(task: TaskSummary) -> RenderableType:
    if task.status != "running" or task.attempt is None:
        return Text(task.reason, style="red", overflow="ellipsis", no_wrap=True) if task.reason else Text("")
    reported = task.attempt.progress()
    if reported is None:
        return Text("")
    done, total, message = reported
    bar = ProgressBar(total=max(total, 1e-9), completed=min(done, total), width=20)
    grid = Table.grid(padding=(0, 1))
    grid.add_row(bar, Text(f"{done:g}/{total:g} {message}".strip(), overflow="ellipsis", no_wrap=True))
    return grid


#: Rows the task table shows at most. Rich renders about a row per millisecond, and the live view
#: redraws 8 times a second: a 1,000-task run spent 4.4 s drawing its final table alone. Beyond
#: this many tasks the table keeps the ones worth a look and counts the rest by state.
MAX_TABLE_ROWS = 50

#: Which tasks a long table keeps first: the ones in trouble, then the ones at work.
_ROW_PRIORITY = {"failed": 0, "upstream-failed": 1, "retrying": 2, "running": 3, "cancelled": 4}


def _shown_tasks(summary: RunSummary) -> tuple[list[TaskSummary], dict[str, int]]:
    """The tasks the table shows (in run order) and, for the others, a count per state."""
    tasks = list(summary.tasks.values())
    if len(tasks) <= MAX_TABLE_ROWS:
        return tasks, {}
    ranked = sorted(range(len(tasks)), key=lambda i: (_ROW_PRIORITY.get(tasks[i].status, 9), i))
    keep = sorted(ranked[: MAX_TABLE_ROWS - 1])
    kept = set(keep)
    hidden: dict[str, int] = {}
    for index, task in enumerate(tasks):
        if index not in kept:
            hidden[task.status] = hidden.get(task.status, 0) + 1
    return [tasks[i] for i in keep], hidden


def task_table(summary: RunSummary) -> Table:
    title = f"{summary.pipeline} · {summary.run_id} · {summary.status}"
    table = Table(title=title, title_justify="left", expand=False)
    for column in ("task", "state", "time", "tries", "out", "size", ""):
        table.add_column(column, no_wrap=column != "")
    shown, hidden = _shown_tasks(summary)
    for task in shown:
        state = task.status + (" (reused)" if task.reused else "")
        table.add_row(
            task.name,
            Text(state, style=STYLES.get(task.status, "")),
            _duration(task.elapsed),
            str(task.attempts or ""),
            _out(task),
            _size(task),
            _progress(task),
        )
    if hidden:
        counts = ", ".join(f"{count} {status}" for status, count in sorted(hidden.items()))
        table.add_row(Text(f"… {sum(hidden.values())} more", style="dim"), Text(counts, style="dim"))
    return table


def _sizing_lines(summary: RunSummary) -> list[RenderableType]:
    """Why each sized task got its size: the control room's one-line reasons (those a task's own
    summary does not already give)."""
    told = " ".join(str(t.records.get("summary", "")) for t in summary.tasks.values())
    sized = [
        t
        for t in summary.tasks.values()
        if t.sizing is not None and not t.reused and (not t.sizing.reason or t.sizing.reason not in told)
    ]
    if not sized:
        return []
    lines: list[RenderableType] = [Text("sizes chosen by the control room:", style="bold")]
    for task in sized:
        assert task.sizing is not None
        lines.append(Text(f"  {task.name}: {_size(task)} — {task.sizing.reason}", overflow="fold"))
    return lines


def _recorded_summaries(summary: RunSummary) -> list[RenderableType]:
    """Text a task kept as its ``summary`` record (``ctx.record(summary=...)``), shown as is."""
    return [
        Text(str(task.records["summary"]).rstrip())
        for task in summary.tasks.values()
        if task.status == "succeeded" and task.records.get("summary")
    ]


def render_summary(summary: RunSummary) -> RenderableType:
    """The final table; the tasks' own summaries, the sizing reasons and where outputs are; then
    for each failed task its reason and the tail of its log."""
    parts: list[RenderableType] = [task_table(summary)]
    parts += _recorded_summaries(summary)
    parts += _sizing_lines(summary)
    if summary.outputs_root and any(t.outputs for t in summary.tasks.values()):
        parts.append(Text(f"outputs: {summary.outputs_root}", style="dim"))
    for task in summary.failed_tasks:
        parts.append(Text(f"task {task.name} failed: {task.reason}", style="bold red"))
        if task.log_path:
            parts.append(Text(f"log: {task.log_path}", style="dim"))
        for line in task.log_tail:
            parts.append(Text("  " + line, style="dim"))
    status = summary.status
    style = {"succeeded": "bold green", "failed": "bold red", "cancelled": "bold magenta"}.get(status, "")
    parts.append(Text(f"run {summary.run_id} {status} in {_duration(summary.duration)}", style=style))
    if status in ("failed", "cancelled"):
        parts.append(Text(f"resume with: headrace resume {summary.run_id}", style="dim"))
    return Group(*parts)


TABLE_COLUMNS = ("task", "state", "time", "tries", "out", "size")


def plain_summary(summary: RunSummary) -> list[str]:
    """:func:`render_summary` as plain lines for a pipe or a log: no boxes, no colour, every cell
    whole (a log line is searched, not looked at)."""
    rows = []
    for task in summary.tasks.values():
        state = task.status + (" (reused)" if task.reused else "")
        rows.append([task.name, state, _duration(task.elapsed), str(task.attempts or ""), _out(task), _size(task)])
    lines = [f"{summary.pipeline} {summary.run_id} {summary.status}", *plain_lines(TABLE_COLUMNS, rows)]
    lines += [
        str(t.records["summary"]).rstrip()
        for t in summary.tasks.values()
        if t.status == "succeeded" and t.records.get("summary")
    ]
    for part in _sizing_lines(summary):
        lines.append(part.plain if isinstance(part, Text) else str(part))
    if summary.outputs_root and any(t.outputs for t in summary.tasks.values()):
        lines.append(f"outputs: {summary.outputs_root}")
    for task in summary.failed_tasks:
        lines.append(f"task {task.name} failed: {task.reason}")
        if task.log_path:
            lines.append(f"log: {task.log_path}")
        lines += ["  " + line for line in task.log_tail]
    lines.append(f"run {summary.run_id} {summary.status} in {_duration(summary.duration)}")
    if summary.status in ("failed", "cancelled"):
        lines.append(f"resume with: headrace resume {summary.run_id}")
    return lines


@contextmanager
def live_view(summary: RunSummary, console: Console | None = None) -> Iterator[None]:
    """Show the task table while the run goes on (on stderr unless given a console)."""
    with Live(
        get_renderable=lambda: task_table(summary),
        console=console or Console(stderr=True),
        refresh_per_second=8,
        transient=True,
    ):
        yield
