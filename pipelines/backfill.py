"""Backfill and catch-up: one run per scheduled time in a date range, never one twice.

The plan walks the pipeline's cron expressions (croniter, in the pipeline's time zone) from the
first day's midnight to the last day's end; a pipeline without a schedule gets one run per day.
Each planned run carries ``run_date``: the day (``2026-11-01``) when the schedule fires at most
once a day, else the RFC 3339 time (``2026-11-01T03:00:00+09:00``). Before submitting, runs that already
succeeded (or are running) for that pipeline and run date are skipped: on Argo through the
``headrace.dev/run-date`` label, locally through the run records.
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pipelines.graph import Pipeline
from steps.core.errors import UserError

#: Above this many runs a backfill asks for ``--yes``: a typo in a year should not start 365 runs.
CONFIRM_ABOVE = 31
#: Never more than this in one command, even with ``--yes``.
HARD_LIMIT = 1000

Status = Literal["submitted", "skipped", "failed", "succeeded"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of the backfill: the scheduled time and the ``run_date`` it is given."""

    scheduled_at: dt.datetime
    run_date: str


@dataclass(frozen=True)
class BackfillResult:
    run_date: str
    status: Status
    run_id: str = ""
    detail: str = ""


def parse_day(value: str, flag: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"{flag} {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-01") from None


def plan(pipeline: Pipeline, start: dt.date, end: dt.date) -> list[PlannedRun]:
    """Every scheduled time from ``start`` 00:00 to ``end`` 24:00 in the pipeline's time zone."""
    from croniter import croniter

    name = pipeline.name
    if end < start:
        raise UserError(f"pipeline {name}: --from {start} is after --to {end}; swap them (the range is inclusive)")
    if (end - start).days + 1 > HARD_LIMIT:
        raise UserError(
            f"pipeline {name}: {start}..{end} spans {(end - start).days + 1} days; backfill at most {HARD_LIMIT} days at a time"
        )
    timezone = pipeline.schedule.timezone if pipeline.schedule else pipeline.timezone
    tz = zoneinfo.ZoneInfo(timezone)
    first = dt.datetime.combine(start, dt.time(), tz)
    stop = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz)
    if pipeline.schedule is None:
        return [
            PlannedRun(first + dt.timedelta(days=i), (start + dt.timedelta(days=i)).isoformat())
            for i in range((end - start).days + 1)
        ]
    times: set[dt.datetime] = set()
    for expression in pipeline.schedule.crons:
        text = expression.strip()
        if text.startswith("@every"):
            raise UserError(
                f"pipeline {name}: schedule {text!r} has no calendar to backfill; use a cron expression such as '0 3 * * *'"
            )
        iterator = croniter(text, first - dt.timedelta(seconds=1))
        while True:
            when: dt.datetime = iterator.get_next(dt.datetime)
            if when >= stop:
                break
            times.add(when)
            if len(times) > HARD_LIMIT:
                raise UserError(
                    f"pipeline {name}: {start}..{end} has more than {HARD_LIMIT} scheduled runs; backfill a shorter range"
                )
    ordered = sorted(times)
    per_day: dict[dt.date, int] = {}
    for when in ordered:
        per_day[when.date()] = per_day.get(when.date(), 0) + 1
    several = any(count > 1 for count in per_day.values())
    return [PlannedRun(when, when.isoformat() if several else when.date().isoformat()) for when in ordered]


def check_size(pipeline: Pipeline, runs: list[PlannedRun], *, yes: bool, limit: int = CONFIRM_ABOVE) -> None:
    """Refuse a large backfill unless the user said ``--yes``."""
    if len(runs) > limit and not yes:
        raise UserError(
            f"pipeline {pipeline.name}: the range holds {len(runs)} runs (more than {limit}); pass --yes to submit them all, or narrow --from/--to"
        )


class Executor(Protocol):
    """Where the runs go: Argo or this machine. ``done`` says whether a run date needs no new run."""

    skip_reason: str

    def done(self, run: PlannedRun) -> str | None: ...

    def start(self, run: PlannedRun) -> BackfillResult: ...


def backfill(
    runs: Iterable[PlannedRun],
    executor: Executor,
    *,
    parallel: int = 1,
    progress: Callable[[BackfillResult], None] | None = None,
) -> list[BackfillResult]:
    """Skip run dates that are already done, start the rest, ``parallel`` at a time.

    Results come back in plan order; one failed submission does not stop the others.
    """
    if parallel < 1:
        raise UserError(f"--parallel {parallel}: must be at least 1")
    planned = list(runs)

    def one(run: PlannedRun) -> BackfillResult:
        existing = executor.done(run)
        if existing:
            result = BackfillResult(run.run_date, "skipped", existing, executor.skip_reason)
        else:
            try:
                result = executor.start(run)
            except UserError:
                raise
            except Exception as error:  # one bad day must not lose the others
                result = BackfillResult(
                    run.run_date, "failed", "", str(error).splitlines()[0] if str(error) else type(error).__name__
                )
        if progress is not None:
            progress(result)
        return result

    if parallel == 1:
        return [one(run) for run in planned]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="backfill") as pool:
        return list(pool.map(one, planned))


# ----------------------------------------------------------------------------- executors


class ArgoExecutor:
    """Submits a compiled Workflow per run date; skips a date with a Succeeded or Running run.

    Runs started by hand or by a backfill carry the ``headrace.dev/run-date`` label and are
    found by label selector. Runs the CronWorkflow started carry Argo's
    ``workflows.argoproj.io/scheduled-time`` annotation instead; they are listed once and matched
    by their scheduled time, so a catch-up never repeats a day the schedule already ran.
    """

    skip_reason = "a run for this date succeeded or is under way"
    phases = ("Succeeded", "Running", "Pending")

    def __init__(
        self, transport: Any, pipeline: Pipeline, workflow: dict[str, Any], params: dict[str, str] | None = None
    ) -> None:
        self.transport = transport
        self.pipeline = pipeline
        self.workflow = workflow
        self.params = dict(params or {})
        self._scheduled: list[tuple[dt.datetime, str]] | None = None
        self._lock = threading.Lock()

    def _scheduled_runs(self) -> list[tuple[dt.datetime, str]]:
        from pipelines.argo.submit import scheduled_runs

        with self._lock:
            if self._scheduled is None:
                self._scheduled = scheduled_runs(self.transport, self.pipeline.name, self.phases)
            return self._scheduled

    def done(self, run: PlannedRun) -> str | None:
        from pipelines.argo.submit import list_runs_for

        found = list_runs_for(self.transport, self.pipeline.name, run.run_date, self.phases)
        if found:
            return found[0]
        tz = run.scheduled_at.tzinfo
        for when, name in self._scheduled_runs():
            same = (
                when == run.scheduled_at
                if "T" in run.run_date
                else when.astimezone(tz).date().isoformat() == run.run_date
            )
            if same:
                return name
        return None

    def start(self, run: PlannedRun) -> BackfillResult:
        from pipelines.argo.submit import submit

        created = submit(self.transport, self.pipeline, self.workflow, params={**self.params, "run_date": run.run_date})
        return BackfillResult(run.run_date, "submitted", created.name)


class LocalExecutor:
    """Runs each date on this machine (one after another per worker); skips dates recorded as succeeded.

    Every run reports to ``control_room`` (the one ``headrace run`` would use), so auto-sized
    tasks are sized by it, day after day, and it learns from each day as it would from a
    daily schedule. ``on_start`` is called with each run date as its run begins (progress).
    """

    skip_reason = "a local run for this date succeeded"

    def __init__(
        self,
        pipeline: Pipeline,
        spec: str,
        settings: Any,
        params: dict[str, str] | None = None,
        *,
        control_room: Any = None,
        on_start: Callable[[PlannedRun], None] | None = None,
    ) -> None:
        from pipelines.runs import RunStore

        self.pipeline = pipeline
        self.spec = spec
        self.settings = settings
        self.params = dict(params or {})
        self.store = RunStore.for_settings(settings)
        self.control_room = control_room
        self.on_start = on_start

    def done(self, run: PlannedRun) -> str | None:
        found = self.store.list_runs(pipeline=self.pipeline.name, run_date=run.run_date, status="succeeded")
        return found[0].id if found else None

    def start(self, run: PlannedRun) -> BackfillResult:
        from pipelines.local import run_pipeline

        if self.on_start is not None:
            self.on_start(run)
        summary = run_pipeline(
            self.pipeline,
            spec=self.spec,
            params={**self.params, "run_date": run.run_date},
            settings=self.settings,
            live=False,
            control_room=self.control_room,
        )
        status: Status = "succeeded" if summary.succeeded else "failed"
        return BackfillResult(run.run_date, status, summary.run_id, "" if summary.succeeded else summary.status)

    def close(self) -> None:
        self.store.close()
