"""``headrace backfill``: one run per scheduled time, skipping run dates already done, on Argo or here."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pipelines.backfill import plan
from pipelines.graph import Pipeline, Schedule, step
from steps.core.errors import UserError
from tests.argo_ops.conftest import invoke, write_flow


@step
def noop() -> int:
    return 1


def pipeline(schedule: Schedule | None, timezone: str | None = None) -> Pipeline:
    with Pipeline("planned", schedule=schedule, timezone=timezone) as p:
        noop()
    return p


def test_a_daily_schedule_plans_one_run_per_day_at_its_local_time() -> None:
    runs = plan(pipeline(Schedule("0 3 * * *", timezone="Asia/Tokyo")), dt.date(2026, 11, 1), dt.date(2026, 11, 7))
    assert [r.run_date for r in runs] == [f"2026-11-0{d}" for d in range(1, 8)]
    assert runs[0].scheduled_at.isoformat() == "2026-11-01T03:00:00+09:00"


def test_a_weekly_schedule_plans_only_its_days() -> None:
    runs = plan(pipeline(Schedule("0 6 * * 1")), dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert [r.run_date for r in runs] == ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]


def test_several_runs_a_day_get_their_scheduled_time_as_run_date() -> None:
    runs = plan(
        pipeline(Schedule(["0 */12 * * *"], timezone="Europe/Paris")), dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    )
    assert [r.run_date for r in runs] == [
        "2026-11-01T00:00:00+01:00",
        "2026-11-01T12:00:00+01:00",
        "2026-11-02T00:00:00+01:00",
        "2026-11-02T12:00:00+01:00",
    ]


def test_a_pipeline_without_schedule_gets_one_run_per_day() -> None:
    runs = plan(pipeline(None), dt.date(2026, 10, 30), dt.date(2026, 11, 2))
    assert [r.run_date for r in runs] == ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"]


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(UserError, match="--from 2026-11-07 is after --to 2026-11-01; swap them"):
        plan(pipeline(None), dt.date(2026, 11, 7), dt.date(2026, 11, 1))


def test_cli_reversed_range_is_one_line_exit_2(tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = invoke(cli, "backfill", write_flow(tmp_path), "--from", "2026-11-07", "--to", "2026-11-01")
    assert code == 2
    assert out.strip().count("\n") == 0 and "swap them" in out


def test_cli_bad_date_is_one_line_exit_2(tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = invoke(cli, "backfill", write_flow(tmp_path), "--from", "2026-11-31", "--to", "2026-12-01")
    assert code == 2 and "--from '2026-11-31' is not a date" in out


@pytest.mark.integration
def test_a_large_range_needs_yes(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)
    code, out = invoke(cli, "backfill", spec, "--from", "2026-10-01", "--to", "2026-11-30")
    assert code == 2
    assert "the range holds 61 runs (more than 31); pass --yes" in out
    assert argo_env.cluster.calls == []
    code, out = invoke(cli, "backfill", spec, "--from", "2026-10-01", "--to", "2026-11-30", "--yes", "--parallel", "8")
    assert code == 0, out
    assert len(argo_env.cluster.workflows()) == 61


@pytest.mark.integration
def test_backfill_skips_dates_that_succeeded_or_are_running(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):
        assert invoke(cli, "submit", spec, "-p", f"run_date={day}")[0] == 0
    phases = {"2026-11-02": "Succeeded", "2026-11-03": "Running", "2026-11-04": "Failed"}
    for wf in argo_env.cluster.workflows():
        argo_env.cluster.set_phase(wf["metadata"]["name"], phases[wf["metadata"]["labels"]["headrace.dev/run-date"]])

    code, out = invoke(
        cli, "backfill", spec, "--from", "2026-11-01", "--to", "2026-11-07", "--parallel", "3", "-p", "limit=7"
    )
    assert code == 0, out
    assert "4 submitted" not in out and "5 submitted, 2 skipped" in out
    new = [w for w in argo_env.cluster.workflows() if w["spec"]["arguments"]["parameters"][0]["value"] != "10"]
    by_day: dict[str, int] = {}
    for wf in argo_env.cluster.workflows():
        day = wf["metadata"]["labels"]["headrace.dev/run-date"]
        by_day[day] = by_day.get(day, 0) + 1
    assert by_day == {
        "2026-11-01": 1,
        "2026-11-02": 1,
        "2026-11-03": 1,
        "2026-11-04": 2,  # the failed day runs again
        "2026-11-05": 1,
        "2026-11-06": 1,
        "2026-11-07": 1,
    }
    submitted = [
        w for w in argo_env.cluster.workflows() if w["metadata"]["labels"]["headrace.dev/run-date"] == "2026-11-05"
    ]
    params = {p["name"]: p["value"] for p in submitted[0]["spec"]["arguments"]["parameters"]}
    assert params == {"run_date": "2026-11-05", "limit": "7"}
    assert new

    code, out = invoke(cli, "backfill", spec, "--from", "2026-11-01", "--to", "2026-11-07")
    assert code == 0 and "7 skipped" in out, "a second backfill submits nothing twice"


@pytest.mark.integration
def test_local_backfill_runs_each_day_here_and_skips_succeeded_days(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = write_flow(tmp_path, schedule="None")
    code, out = invoke(
        cli, "backfill", spec, "--from", "2026-11-01", "--to", "2026-11-02", "--local", "--parallel", "2"
    )
    assert code == 0, out
    assert "2026-11-01: succeeded" in out and "2026-11-02: succeeded" in out

    from pipelines.runs import RunStore
    from steps.core.settings import load_settings

    store = RunStore.for_settings(load_settings())
    try:
        days = sorted(r.run_date for r in store.list_runs(pipeline="daily-scores", status="succeeded"))
    finally:
        store.close()
    assert days == ["2026-11-01", "2026-11-02"]
    code, out = invoke(cli, "backfill", spec, "--from", "2026-11-01", "--to", "2026-11-03", "--local")
    assert code == 0, out
    assert "2 skipped, 1 succeeded" in out


@pytest.mark.integration
def test_catch_up_skips_days_the_schedule_already_ran(argo_env: Any, tmp_path: Path, cli: CliRunner) -> None:
    spec = write_flow(tmp_path)
    assert invoke(cli, "deploy", spec)[0] == 0
    ran = argo_env.cluster.schedule_run("daily-scores", "2026-11-01T18:00:00Z")  # 03:00 on Nov 2 in Tokyo
    argo_env.cluster.set_phase(ran, "Succeeded")
    failed = argo_env.cluster.schedule_run("daily-scores", "2026-11-02T18:00:00Z")  # Nov 3: failed, runs again
    argo_env.cluster.set_phase(failed, "Failed")
    code, out = invoke(cli, "backfill", spec, "--from", "2026-11-01", "--to", "2026-11-03")
    assert code == 0, out
    assert f"2026-11-02: skipped {ran}" in out and "2 submitted, 1 skipped" in out
    code, out = invoke(cli, "list", "--pipeline", "daily-scores", "--status", "succeeded")
    assert ran in out and "2026-11-01T18:00:00Z" in out


def test_run_dates_with_a_time_of_day_make_valid_distinct_labels() -> None:
    from pipelines.argo.submit import run_date_label
    from pipelines.validation import LABEL_VALUE

    runs = plan(
        pipeline(Schedule("0 */6 * * *", timezone="America/New_York")), dt.date(2026, 11, 1), dt.date(2026, 11, 1)
    )
    labels = [run_date_label(r.run_date) for r in runs]
    assert len(set(labels)) == len(runs) == 4
    assert all(LABEL_VALUE.match(label) and len(label) <= 63 for label in labels), labels
