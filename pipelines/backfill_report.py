"""What a local backfill's sizing did, day by day: the table ``headrace backfill --local`` ends with.

For every task the control room sized (``sizing="auto"``) and every run date: the input rows, the
size chosen and how (the declared guess, measured by the first runs, learned from history, escalated
after an OOM), the peak
memory the task really used, and the run's cost against static peak sizing: one size per task,
fixed in advance, that fits the largest peak of the whole range with the policy's headroom (what
a careful engineer would declare knowing every day's peak beforehand).

Read from the local run records (sizes, peaks, durations, output rows) and priced with the
control room's catalog, so the table is the same whether the embedded control room or a service
sized the runs. A run's cost is each attempt's hourly price times its duration (a failed
attempt is paid for too); its static cost is the static size's price over the last attempt's
duration (the static size fits, so it runs once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from control_room.catalog import Catalog, Option, static_peak_option
from pipelines.graph import Pipeline
from pipelines.plain import plural
from pipelines.runs import AttemptRecord, RunStore
from steps.core.contract import SizingTarget
from steps.core.quantities import QuantityError, memory_bytes

DECLARED, MEASURED, LEARNED, AFTER_OOM = "declared guess", "measured", "learned", "OOM escalation"
BORROWED = "borrowed prior"


@dataclass(frozen=True)
class SizedDay:
    """One sized task on one run date."""

    run_date: str
    run_id: str
    task: str
    input_rows: int | None
    size: str
    memory_bytes: int | None
    basis: str
    peak_bytes: int | None
    attempts: int
    ooms: int
    duration: float | None
    cost_usd: float | None
    static_size: str = ""
    static_cost_usd: float | None = None


def basis_of(reason: str, source: str) -> str:
    """How a decision came about, from its reason: the policy says it in words."""
    if "ran out of memory" in reason:
        return AFTER_OOM
    if "learned peak" in reason:
        return LEARNED
    if "measured by" in reason or " scaled to " in reason:  # the first runs, before a fit is trusted
        return MEASURED
    if "bytes/row" in reason:
        return DECLARED
    if "borrowed" in reason:
        return BORROWED
    return source or "declared resources"


def _memory(sizing: dict[str, Any]) -> int | None:
    try:
        return memory_bytes(str(sizing["memory"])) if sizing.get("memory") else None
    except QuantityError:
        return None


def _option(catalog: Catalog, target: SizingTarget, sizing: dict[str, Any] | None) -> Option | None:
    sizing = sizing or {}
    return catalog.find(target, str(sizing.get("instance_type") or ""), int(sizing.get("instance_count") or 1))


def _cost(catalog: Catalog, target: SizingTarget, attempts: Sequence[AttemptRecord]) -> float | None:
    total = 0.0
    for attempt in attempts:
        option = _option(catalog, target, attempt.sizing)
        if option is None or attempt.duration is None:
            return None
        total += option.total_hourly * attempt.duration / 3600
    return total


def sized_days(
    store: RunStore, pipeline: Pipeline, runs: Iterable[tuple[str, str]], catalog: Catalog
) -> list[SizedDay]:
    """Every sized task of ``runs`` (``(run_date, run_id)`` pairs), by run date, in pipeline order."""
    sized = [name for name in pipeline.topological_order() if pipeline.tasks[name].sizing == "auto"]
    days: list[SizedDay] = []
    for run_date, run_id in sorted(runs):
        if not run_id:
            continue
        attempts: dict[str, list[AttemptRecord]] = {}
        for attempt in store.attempts(run_id):
            attempts.setdefault(attempt.task, []).append(attempt)
        rows = {(o.task, o.output): o.rows for o in store.outputs(run_id)}
        for name in sized:
            tried = sorted(attempts.get(name, []), key=lambda a: a.attempt)
            if not tried:
                continue
            task = pipeline.tasks[name]
            known = [r for r in (rows.get((ref.task, ref.output)) for ref in task.input_refs()) if r is not None]
            last = tried[-1]
            sizing = last.sizing or {}
            days.append(
                SizedDay(
                    run_date=run_date,
                    run_id=run_id,
                    task=name,
                    input_rows=sum(known) if known else None,
                    size=str(sizing.get("instance_type") or sizing.get("memory") or "declared"),
                    memory_bytes=_memory(sizing),
                    basis=basis_of(str(sizing.get("reason") or ""), str(sizing.get("source") or "")),
                    peak_bytes=last.peak_memory_bytes,
                    attempts=len(tried),
                    ooms=sum(a.status == "oom" for a in tried),
                    duration=last.duration,
                    cost_usd=_cost(catalog, task.target, tried),
                )
            )
    return days


def with_static_costs(days: list[SizedDay], pipeline: Pipeline, catalog: Catalog, headroom: float) -> list[SizedDay]:
    """``days`` with each run priced at its task's static peak size as well."""
    statics: dict[str, Option | None] = {}
    for name in {d.task for d in days}:
        peaks = [d.peak_bytes for d in days if d.task == name and d.peak_bytes]
        statics[name] = static_peak_option(catalog, pipeline.tasks[name].target, peaks, headroom)
    priced = []
    for day in days:
        option = statics[day.task]
        if option is None or day.duration is None:
            priced.append(day)
            continue
        static_cost = option.total_hourly * day.duration / 3600
        priced.append(dataclasses.replace(day, static_size=option.label, static_cost_usd=static_cost))
    return priced


def report(store: RunStore, pipeline: Pipeline, runs: Iterable[tuple[str, str]], settings: Any) -> list[SizedDay]:
    """The priced days of ``runs``, with the catalog and headroom ``settings`` configure."""
    from control_room.catalog import load_catalog, load_rules

    catalog = load_catalog(settings.control_room_catalog or None)
    rules = load_rules(settings.control_room_rules or None, catalog)
    return with_static_costs(sized_days(store, pipeline, runs, catalog), pipeline, catalog, rules.headroom)


# ----------------------------------------------------------------------------- rendering


def _mib(value: int | None) -> str:
    return "" if not value else f"{value / 2**20:,.0f} MiB"


def _usd(value: float | None) -> str:
    """Per-run costs of seconds-long tasks are fractions of a cent: shown in micro-dollars."""
    if value is None:
        return ""
    return f"${value:,.2f}" if value >= 0.01 else f"{value * 1e6:,.1f} µ$"


def table_rows(days: Sequence[SizedDay]) -> list[list[str]]:
    """One row per sized task and day: the cells of the table, as text."""
    rows = []
    for day in days:
        size = day.size + (f" ({day.ooms} OOM, {day.attempts} tries)" if day.ooms else "")
        rows.append(
            [
                day.run_date,
                day.task,
                "" if day.input_rows is None else f"{day.input_rows:,}",
                size,
                day.basis,
                _mib(day.peak_bytes),
                _usd(day.cost_usd),
                f"{_usd(day.static_cost_usd)} ({day.static_size})" if day.static_size else "",
            ]
        )
    return rows


COLUMNS = ("run date", "task", "input rows", "size chosen", "how", "peak used", "cost", "static peak sizing")


def _versus(cost: float, static: float) -> str:
    if not static:
        return ""
    change = cost / static - 1
    return f"{abs(change):.0%} {'less' if change <= 0 else 'more'} than static peak sizing"


def totals(days: Sequence[SizedDay]) -> str:
    """What the sized runs cost against static peak sizing, over the range and from the day
    learning began, and how many OOMs were escalated."""
    priced = [d for d in days if d.cost_usd is not None and d.static_cost_usd is not None]
    if not priced:
        return "no sized task was priced (sizes outside the catalog, or no run)"
    cost = sum(d.cost_usd or 0.0 for d in priced)
    static = sum(d.static_cost_usd or 0.0 for d in priced)
    parts = [
        f"{plural(len(priced), 'sized task run')}: {_usd(cost)} as sized, {_usd(static)} at static peak sizing ({_versus(cost, static)})"
    ]
    learned = sorted(d.run_date for d in days if d.basis == LEARNED)
    if learned:
        later = [d for d in priced if d.run_date >= learned[0]]
        later_cost = sum(d.cost_usd or 0.0 for d in later)
        later_static = sum(d.static_cost_usd or 0.0 for d in later)
        parts.append(
            f"learned sizes from {learned[0]}: {_usd(later_cost)} since then ({_versus(later_cost, later_static)})"
        )
    else:
        parts.append("no learned size yet (history too short)")
    parts.append(plural(sum(d.ooms for d in days), "OOM escalation"))
    return "; ".join(parts)
