"""The recipe stream's own steps on their own: when training happens, sample data, follow-ups, summary."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from examples.recipe_stream import data, summary, tasks
from steps.core.contract import SizingDecision, SizingTarget
from steps.core.errors import NotFoundError, UserError
from steps.core.settings import load_settings
from steps.runtime.context import StepContext

DAY = dt.date(2026, 12, 1)


def _context(tmp_path: Path, task: str, sizing: SizingDecision | None = None, profile: str = "local") -> StepContext:
    overrides = {"profile": profile, "state_dir": str(tmp_path / ".headrace"), "artifact_root": str(tmp_path / "art")}
    settings = load_settings(overrides, environ={}, config_file=tmp_path / "absent.toml")
    return StepContext(
        pipeline="recipe-stream",
        task=task,
        run_id="r1",
        settings=settings,
        run_date=DAY,
        sizing=sizing,
        resources={"cpu": "500m", "memory": "1Gi"},
    )


@pytest.mark.parametrize(
    ("retrain", "weekday", "have_model", "due"),
    [
        ("weekly", "monday", True, True),
        ("weekly", "tuesday", True, False),
        ("weekly", "tuesday", False, True),
        ("always", "tuesday", True, True),
        ("never", "monday", True, False),
    ],
)
def test_training_happens_on_the_training_weekday_when_asked_or_when_no_model_exists(
    retrain: str, weekday: str, have_model: bool, due: bool
) -> None:
    assert tasks.train_due(retrain, "Monday", weekday, have_model)[0] is due


def test_retrain_never_without_a_model_says_how_to_get_one() -> None:
    with pytest.raises(NotFoundError, match="retrain=always"):
        tasks.train_due("never", "monday", "monday", have_model=False)


@pytest.mark.parametrize(("retrain", "weekday"), [("sometimes", "monday"), ("weekly", "someday")])
def test_bad_training_parameters_name_the_parameter(retrain: str, weekday: str) -> None:
    with pytest.raises(UserError, match=r"parameter (retrain|train_weekday)"):
        tasks.train_due(retrain, weekday, "monday", have_model=True)


def test_sample_data_writes_the_day_into_the_local_tables_folder(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "sample-data")
    written = tasks.sample_data(ctx, rows=300, seed=data.DEFAULT_SEED)
    root = tmp_path / ".headrace" / "tables"
    assert written["written"] is True and written["root"] == str(root)
    assert written["tables"]["recipes.items"]["path"] == str(root / "recipes" / "items" / "2026-12-01.parquet")
    assert written["tables"]["recipes.items"]["classes"] == data.class_counts(DAY, 300)


def test_sample_data_writes_nothing_on_the_aws_profile(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "sample-data", profile="aws")
    assert tasks.sample_data(ctx, rows=300, seed=7) == {"written": False, "profile": "aws", "tables": {}}
    assert not (tmp_path / ".headrace" / "tables").exists()


def test_a_follow_up_lists_its_class_by_confidence_and_reports_the_size_it_ran_at(tmp_path: Path) -> None:
    decision = SizingDecision(SizingTarget.POD, "pod-500m-4Gi", cpu="500m", memory="4Gi", reason="2.2 GiB needed")
    ctx = _context(tmp_path, "shopping-lists", sizing=decision)
    items = pd.DataFrame({"recipe_id": [3, 1, 2], "confidence": [0.7, 0.9, 0.7], "predicted_class": ["cook"] * 3})
    out = tasks.follow_up(ctx, items, "cook")
    actions = pd.read_parquet(ctx.artifact(out["actions"]).local_path())
    assert actions["recipe_id"].tolist() == [1, 2, 3]
    assert actions["priority"].tolist() == [1, 2, 3]
    assert set(actions["action"]) == {"shopping-lists"}
    report = out["report"]
    assert report["rows"] == 3 and report["output"] == out["actions"].uri
    assert report["size"] == {
        "instance_type": "pod-500m-4Gi",
        "cpu": "500m",
        "memory": "4Gi",
        "reason": "2.2 GiB needed",
        "source": "policy",
    }


def test_a_follow_up_for_an_unknown_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="outcome 'bake'"):
        tasks.follow_up(_context(tmp_path, "x"), pd.DataFrame({"recipe_id": [], "confidence": []}), "bake")


def test_summary_text_has_a_line_per_class_with_rows_share_size_reason_and_output() -> None:
    mix = [
        {"predicted_class": "cook", "items": 8000},
        {"predicted_class": "save", "items": 1500},
        {"predicted_class": "skip", "items": 500},
    ]
    reports = {
        "cook": {
            "action": "shopping-lists",
            "output": "file:///a.parquet",
            "size": {"instance_type": "pod-500m-4Gi", "memory": "4Gi", "reason": "2.2 GiB needed"},
        }
    }
    text = summary.render("2026-12-01", "recipe-stream", mix, reports)
    lines = text.splitlines()
    assert lines[0] == "recipe-stream 2026-12-01: 10,000 items scored"
    assert "8,000" in lines[1] and "80.0%" in lines[1] and "on pod-500m-4Gi: 2.2 GiB needed" in lines[1]
    assert lines[2].strip() == "-> file:///a.parquet"
    assert "500" in lines[4] and "no follow-up task" in lines[4]


def test_summary_prints_when_no_slack_is_configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _context(tmp_path, "summary")
    report = ctx.store.put_bytes(
        json.dumps({"action": "refresh", "output": "file:///r", "rows": 2, "size": {"reason": "small"}}).encode(),
        "recipe-stream/r1/refresh/report.json",
        format="json",
    )
    mix = pd.DataFrame({"predicted_class": ["skip"], "items": [2]})
    result = summary.summarize(ctx, mix, {"skip": ctx.artifact(report)})
    assert result["sent_to"] == "console"
    assert result["classes"] == {"skip": {"rows": 2, "size": {"reason": "small"}, "output": "file:///r"}}
    assert capsys.readouterr().out.startswith("recipe-stream 2026-12-01: 2 items scored")
    assert ctx.records["summary"] == result["text"]


_PEAK_OF_A_FOLLOW_UP = """
import sys
from pathlib import Path
import pandas as pd
from tests.examples.test_recipe_stream_tasks import _context
from examples.recipe_stream import tasks
rows = int(sys.argv[1])
items = pd.DataFrame({"recipe_id": range(1, rows + 1), "confidence": [0.5] * rows, "predicted_class": ["cook"] * rows})
context = _context(Path(sys.argv[2]), "shopping-lists")
# The kernel's high-water mark restarts here (clear_refs 5), so the figure is the task's own peak,
# not an import's that happened to reach higher.
Path("/proc/self/clear_refs").write_text("5")
tasks.follow_up(context, items, "cook")
status = Path("/proc/self/status").read_text()
print(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024)
"""


def test_a_follow_up_really_uses_memory_in_proportion_to_its_rows(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    def peak(rows: int) -> int:
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_OF_A_FOLLOW_UP, str(rows), str(tmp_path / str(rows))],
            cwd=Path(__file__).parents[2],
            # a clean environment with the allocator settings the runner gives tasks: nothing that
            # earlier tests left in this process's environment may change what is measured
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": os.environ.get("HOME", "/root"),
                "ARROW_DEFAULT_MEMORY_POOL": "system",
                "MALLOC_ARENA_MAX": "2",
                "PYTHONPATH": str(Path(__file__).parents[2]),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    small, large = peak(1_000), peak(9_000)
    # 8,000 more rows, a 64 KiB card each: about 500 MiB more at the peak, measured by the kernel
    # (allocator noise of a few tens of MiB either way).
    grown = large - small
    assert 0.8 * 8_000 * tasks.CARD_BYTES <= grown <= 1.3 * 8_000 * tasks.CARD_BYTES, grown


def _trained(ctx: StepContext, day: dt.date, uri: str) -> None:
    ref = {"uri": uri, "bytes": 1, "rows": None, "format": "model", "sha256": ""}
    ctx.store.put_bytes(json.dumps(ref).encode(), tasks.model_key(ctx.pipeline, day), format="json")


def test_a_run_reuses_the_newest_model_trained_on_or_before_its_date_never_a_later_one(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "train")
    _trained(ctx, dt.date(2026, 11, 16), "file:///models/2026-11-16/model.tar.gz")
    _trained(ctx, dt.date(2026, 12, 2), "file:///models/2026-12-02/model.tar.gz")
    store = ctx.store
    assert tasks.model_as_of(store, ctx.pipeline, dt.date(2026, 11, 22)) == (
        dt.date(2026, 11, 16),
        store.uri_for(tasks.model_key(ctx.pipeline, dt.date(2026, 11, 16))),
    )
    found = tasks.model_as_of(store, ctx.pipeline, dt.date(2026, 12, 3))
    assert found is not None and found[0] == dt.date(2026, 12, 2)
    assert tasks.model_as_of(store, ctx.pipeline, dt.date(2026, 11, 15)) is None


def test_a_backfilled_day_never_reuses_a_model_trained_for_a_later_day(tmp_path: Path) -> None:
    import dataclasses

    ctx = dataclasses.replace(_context(tmp_path, "train"), run_date=dt.date(2026, 11, 22))
    _trained(ctx, dt.date(2026, 12, 2), "file:///models/2026-12-02/model.tar.gz")  # the "latest" model
    with pytest.raises(NotFoundError, match="no model was trained for this run date or before"):
        tasks.train_model(ctx, data=None, retrain="never", train_weekday="monday")  # type: ignore[arg-type]
    _trained(ctx, dt.date(2026, 11, 20), "file:///models/2026-11-20/model.tar.gz")
    model = tasks.train_model(ctx, data=None, retrain="weekly", train_weekday="monday")  # type: ignore[arg-type]
    assert model.uri == "file:///models/2026-11-20/model.tar.gz"
