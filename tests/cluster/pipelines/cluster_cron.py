"""A pipeline on a schedule of every minute: for the real cron controller to start."""

from __future__ import annotations

from pipelines import Pipeline, Schedule, step


@step
def tick(day: str) -> str:
    print(f"tick for {day}", flush=True)
    return day


with Pipeline("cluster-cron", schedule=Schedule("* * * * *", timezone="UTC")) as pipeline:
    tick(day=pipeline.run_date)


with Pipeline("cluster-daily", schedule=Schedule("0 3 * * *", timezone="UTC")) as daily:
    tick(day=daily.run_date, name="daily-tick")
