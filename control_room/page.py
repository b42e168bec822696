"""The control room's page: per task, input size over runs with the chosen size and its cost.

Rendered on the server as one self-contained HTML document with inline SVG (the cluster's network
is often closed: no CDN, no script). Every chart element carries its real values in ``data-``
attributes and an SVG ``<title>`` so a hover shows them and a test can read them.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Any

from control_room.catalog import Catalog, Rules, static_peak_option
from control_room.store import Store
from steps.core.display import format_bytes

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 16, 40

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 6px} .muted{color:#6b7280}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;margin:12px 0}
table{border-collapse:collapse;width:100%;font-size:13px} th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{color:#6b7280;font-weight:600} .input-bar{fill:#93c5fd} .cost-line{fill:none;stroke:#b45309;stroke-width:2}
.cost-point{fill:#b45309} .oom{fill:#dc2626} .chosen-bar{fill:#a7f3d0} .peak-point{fill:#065f46} .axis{stroke:#9ca3af} .label{font-size:11px;fill:#4b5563}
.legend span{display:inline-block;margin-right:16px;font-size:12px} .swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _capacity(catalog: Catalog, item: dict[str, Any]) -> int | None:
    option = catalog.find(item["target"], item["instance_type"], item["instance_count"])
    return option.total_memory if option is not None else None


def _cost(item: dict[str, Any], catalog: Catalog | None = None) -> float | None:
    """The run's cost: as reported, else its size's catalog price over its observed duration
    (local runs report no bill), else the decision's prediction."""
    observed = item.get("cost_usd")
    if observed is not None:
        return float(observed)
    duration = item.get("duration_seconds")
    if catalog is not None and duration is not None:
        option = catalog.find(item["target"], item["instance_type"], item["instance_count"])
        if option is not None:
            return option.total_hourly * float(duration) / 3600
    predicted = item.get("predicted_cost_usd")
    return float(predicted) if predicted is not None else None


def run_date(item: dict[str, Any]) -> str:
    """The run's date: the ``run_date`` the runner sent with its request, else the day it was decided."""
    request = item.get("request") or {}
    sent = str(request.get("run_date") or "") if isinstance(request, dict) else ""
    return sent[:10] if sent else dt.datetime.fromtimestamp(item["decided_at"], dt.UTC).date().isoformat()


def by_date(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs in run-date order (a backfill decides many dates at once, and not always in order)."""
    return sorted(items, key=lambda i: (run_date(i), i["decided_at"]))


def usd(value: float) -> str:
    """Dollars people can read at any scale: ``$1.25``, ``$0.0042``, ``38.2 µ$`` for runs of seconds."""
    if value >= 0.01 or value == 0:
        return f"${value:,.2f}"
    if value >= 0.0001:
        return f"${value:.4f}"
    return f"{value * 1e6:,.1f} µ$"


def chart(pipeline: str, task: str, items: list[dict[str, Any]], catalog: Catalog) -> str:
    """One task's SVG: input bytes as bars (left axis), cost per run as a line (right axis)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    max_input = max((i["input_bytes"] for i in items), default=0) or 1
    costs = [c for c in (_cost(i, catalog) for i in items) if c is not None]
    max_cost = max(costs, default=0.0) or 1.0  # the axis is scaled to the costs shown
    step = plot_w / max(len(items), 1)
    bar_w = max(2.0, step * 0.6)
    parts = [
        f'<svg class="task-chart" data-pipeline="{_e(pipeline)}" data-task="{_e(task)}" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="input size and cost per run of {_e(pipeline)}/{_e(task)}">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<text class="label" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_e(format_bytes(max_input))}</text>',
        f'<text class="label" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
        f'<text class="label cost-axis-top" x="{LEFT + plot_w + 6}" y="{TOP + 10}" data-cost-usd="{max_cost:.10g}">'
        f"{_e(usd(max_cost))}</text>",
        f'<text class="label" x="{LEFT + plot_w + 6}" y="{TOP + plot_h}">$0</text>',
    ]
    points: list[tuple[float, float]] = []
    for index, item in enumerate(items):
        x = LEFT + step * index + (step - bar_w) / 2
        height = plot_h * item["input_bytes"] / max_input
        capacity = _capacity(catalog, item)
        size = (
            f"{item['instance_count']}x {item['instance_type']}"
            if item["instance_count"] > 1
            else item["instance_type"]
        )
        title = f"{run_date(item)}, run {item['run_id']}: input {format_bytes(item['input_bytes'])}, size {size}" + (
            f" ({format_bytes(capacity)})" if capacity else ""
        )
        outcome = item.get("outcome") or ""
        parts.append(
            f'<rect class="input-bar{" oom" if outcome == "oom" else ""}" x="{x:.1f}" y="{TOP + plot_h - height:.1f}" '
            f'width="{bar_w:.1f}" height="{height:.1f}" data-run-id="{_e(item["run_id"])}" '
            f'data-input-bytes="{item["input_bytes"]}" data-instance-type="{_e(item["instance_type"])}" '
            f'data-run-date="{_e(run_date(item))}" '
            f'data-instance-count="{item["instance_count"]}" data-capacity-bytes="{capacity or ""}" '
            f'data-outcome="{_e(outcome)}"><title>{_e(title)}</title></rect>'
        )
        every = max(1, math.ceil(len(items) / 16))
        if index % every == 0:
            parts.append(
                f'<text class="label date-label" x="{x + bar_w / 2:.1f}" y="{TOP + plot_h + 14}" '
                f'text-anchor="middle" data-run-id="{_e(item["run_id"])}">{_e(run_date(item)[5:])}</text>'
            )
        cost = _cost(item, catalog)
        if cost is not None:
            cx = x + bar_w / 2
            cy = TOP + plot_h - plot_h * cost / max_cost
            points.append((cx, cy))
            cost_title = f"run {item['run_id']}: {size}, {usd(cost)}"
            parts.append(
                f'<circle class="cost-point" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" data-run-id="{_e(item["run_id"])}" '
                f'data-cost-usd="{cost:.10g}" data-instance-type="{_e(item["instance_type"])}">'
                f"<title>{_e(cost_title)}</title></circle>"
            )
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.insert(len(parts) - len(points), f'<polyline class="cost-line" points="{path}"/>')
    parts.append(f'<text class="label" x="{LEFT}" y="{HEIGHT - 4}">runs by run date ({len(items)})</text></svg>')
    return "".join(parts)


def size_chart(pipeline: str, task: str, items: list[dict[str, Any]], catalog: Catalog) -> str:
    """The chosen sizes: memory of each run's size as bars, the peak it really used as a dot."""
    height = 120
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - 24
    capacities = [_capacity(catalog, i) or 0 for i in items]
    peaks = [int(i.get("peak_memory_bytes") or 0) for i in items]
    top = max([*capacities, *peaks, 1])
    step = plot_w / max(len(items), 1)
    bar_w = max(2.0, step * 0.6)
    parts = [
        f'<svg class="size-chart" data-pipeline="{_e(pipeline)}" data-task="{_e(task)}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="chosen memory and observed peak per run of {_e(pipeline)}/{_e(task)}">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"/>',
        f'<text class="label" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{_e(format_bytes(top))}</text>',
        f'<text class="label" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for index, (item, capacity, peak) in enumerate(zip(items, capacities, peaks, strict=True)):
        x = LEFT + step * index + (step - bar_w) / 2
        bar_h = plot_h * capacity / top
        run_id = item["run_id"]
        holds = f"run {run_id}: {item['instance_type']} holds {format_bytes(capacity)}"
        used = f"run {run_id}: peak {format_bytes(peak)}"
        parts.append(
            f'<rect class="chosen-bar" x="{x:.1f}" y="{TOP + plot_h - bar_h:.1f}" width="{bar_w:.1f}" '
            f'height="{bar_h:.1f}" data-run-id="{_e(item["run_id"])}" data-capacity-bytes="{capacity}">'
            f"<title>{_e(holds)}</title></rect>"
            if capacity
            else ""
        )
        if peak:
            cy = TOP + plot_h - plot_h * peak / top
            parts.append(
                f'<circle class="peak-point" cx="{x + bar_w / 2:.1f}" cy="{cy:.1f}" r="3.5" '
                f'data-run-id="{_e(item["run_id"])}" data-peak-bytes="{peak}">'
                f"<title>{_e(used)}</title></circle>"
            )
    parts.append(
        f'<text class="label" x="{LEFT}" y="{height - 4}">memory chosen (bars) and peak used (dots)</text></svg>'
    )
    return "".join(parts)


def _when(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _static_comparison(items: list[dict[str, Any]], catalog: Catalog, total: float) -> str:
    """``, static peak sizing (pod-500m-1Gi): 30.2 µ$, 12% saved``: the same runs on the one size
    that fits their largest peak with the policy's default headroom, over the same durations."""
    peaks = [int(i["peak_memory_bytes"]) for i in items if i.get("peak_memory_bytes")]
    timed = [i for i in items if i.get("duration_seconds") is not None]
    option = static_peak_option(catalog, items[0]["target"], peaks, Rules().headroom) if timed else None
    if option is None or not total:
        return ""
    static = sum(option.total_hourly * float(i["duration_seconds"]) / 3600 for i in timed)
    if not static:
        return ""
    change = 1 - total / static
    verdict = f"{change:.0%} saved" if change >= 0 else f"{-change:.0%} more"
    return (
        f", static peak sizing (<code>{_e(option.label)}</code>): "
        f'<span class="static-total" data-cost-usd="{static:.10g}" data-saving="{change:.4f}">{usd(static)}, '
        f"{verdict}</span>"
    )


def _filters(series_keys: list[tuple[str, str]], pipeline: str | None, task: str | None) -> str:
    """A plain GET form (no script): choose a pipeline and a task; empty means all."""

    def select(name: str, values: list[str], chosen: str | None) -> str:
        options = [f'<option value=""{"" if chosen else " selected"}>all {name}s</option>']
        for value in values:
            mark = " selected" if value == chosen else ""
            options.append(f'<option value="{_e(value)}"{mark}>{_e(value)}</option>')
        return f'<label>{name} <select name="{name}">{"".join(options)}</select></label> '

    pipelines = sorted({p for p, _ in series_keys})
    tasks = sorted({t for p, t in series_keys if not pipeline or p == pipeline})
    return (
        '<form class="filters card" method="get" action="/">'
        + select("pipeline", pipelines, pipeline)
        + select("task", tasks, task)
        + '<button type="submit">show</button> <a href="/">all</a></form>'
    )


def render_page(
    store: Store,
    catalog: Catalog,
    decisions_shown: int = 25,
    *,
    pipeline: str | None = None,
    task: str | None = None,
    run: str | None = None,
) -> str:
    """The whole page as HTML, optionally only one pipeline, task or run (query parameters)."""
    everything = store.task_series()
    series = {
        key: items
        for key, items in everything.items()
        if (not pipeline or key[0] == pipeline) and (not task or key[1] == task)
    }
    sections: list[str] = []
    for (name, task_name), unordered in sorted(series.items()):
        items = by_date(unordered)
        if run:
            items = [i for i in items if i["run_id"] == run] or items
        total = sum(c for c in (_cost(i, catalog) for i in items) if c is not None)
        versus = _static_comparison(items, catalog, total)
        sections.append(
            f'<div class="card task" data-pipeline="{_e(name)}" data-task="{_e(task_name)}">'
            f"<h2>{_e(name)} / {_e(task_name)}</h2>"
            f'<div class="muted">{len(items)} sized run{"s" if len(items) != 1 else ""}, '
            f'<span class="task-total" data-cost-usd="{total:.10g}">{usd(total)}</span> in total{versus}; last: '
            f"{_e(items[-1]['reason'])}</div>"
            f"{chart(name, task_name, items, catalog)}{size_chart(name, task_name, items, catalog)}</div>"
        )
    rows = []
    shown = store.decisions(pipeline=pipeline, task=task, run_id=run, limit=decisions_shown)
    started_by = store.started_by([item["run_id"] for item in shown])
    for item in shown:
        cost = item.get("predicted_cost_usd")
        size = (
            f"{item['instance_count']}x {item['instance_type']}"
            if item["instance_count"] > 1
            else item["instance_type"]
        )
        link = f'<a class="run-link" href="/?run={_e(item["run_id"])}">{_e(item["run_id"])}</a>'
        rows.append(
            f'<tr class="decision" data-run-id="{_e(item["run_id"])}"><td>{_e(_when(item["decided_at"]))}</td>'
            f'<td class="run-date">{_e(run_date(item))}</td>'
            f"<td>{_e(item['pipeline'])}</td><td>{_e(item['task'])}</td><td>{link}</td>"
            f'<td class="started-by">{_e(started_by.get(item["run_id"], "by hand or cron").removeprefix("started "))}</td>'
            f"<td>{_e(format_bytes(item['input_bytes']))}</td><td><code>{_e(size)}</code></td>"
            f"<td>{'' if cost is None else _e(usd(cost))}</td><td>{_e(item['source'])}</td>"
            f'<td class="reason">{_e(item["reason"])}</td></tr>'
        )
    body = "".join(sections) or '<p class="muted">No sized runs yet: run a pipeline with sizing="auto" tasks.</p>'
    table = (
        "<table><thead><tr><th>when (UTC)</th><th>run date</th><th>pipeline</th><th>task</th><th>run</th><th>started</th><th>input</th>"
        "<th>size</th><th>predicted cost</th><th>source</th><th>reason</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>headrace control room</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
        "<h1>headrace control room</h1>"
        '<div class="legend muted"><span><i class="swatch" style="background:#93c5fd"></i>input size</span>'
        '<span><i class="swatch" style="background:#b45309"></i>cost per run (billed, else the size&#39;s price over the observed duration, else predicted)</span>'
        '<span><i class="swatch" style="background:#dc2626"></i>ran out of memory</span>'
        '<span><i class="swatch" style="background:#a7f3d0"></i>memory chosen</span>'
        '<span><i class="swatch" style="background:#065f46"></i>peak memory used</span></div>'
        f"{_filters(sorted(everything), pipeline, task)}"
        + (f'<p class="muted">run <code>{_e(run)}</code> only. <a href="/">all runs</a></p>' if run else "")
        + f'{body}<h2>Last decisions</h2><div class="card">{table}</div></body></html>'
    )
