"""``headrace backfill --local`` sizes every auto task through the control room, day after day, and
ends with what the sizing did: the declared guess first, learned sizes once history suffices,
peaks and costs against static peak sizing.

The real command in its own process, its stdout a pipe (as in CI logs), the embedded control
room on SQLite, every task a real process under its memory limit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from control_room.store import Store

RANGE = ("--from", "2026-11-01", "--to", "2026-11-05", "--local")
FLOW = """
from pipelines import Pipeline, Resources, step


@step
def source(ctx):
    import pandas as pd

    return pd.DataFrame({"id": range(400 * ctx.run_date.day)})  # more rows every day


@step(sizing="auto", bytes_per_row=256 * 1024, resources=Resources(cpu="500m", memory="1Gi"))
def cards(items):
    import numpy as np

    frame = items.read_pandas()
    rendered = np.ones((len(frame), 64 * 1024), dtype=np.uint8)  # 64 KiB a row, really
    return int(rendered[:, -1].sum())


with Pipeline("growing") as pipeline:
    cards(items=source())
"""


def test_local_backfill_sizes_each_day_through_the_control_room_and_tables_the_learning(
    tmp_path: Path, isolated_headrace: Path
) -> None:
    (tmp_path / "growing.py").write_text(FLOW)
    done = subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "backfill", "growing.py:pipeline", *RANGE],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert not any("│" in line or "…" in line for line in lines), "piped output is plain and never cut"
    for day in range(1, 6):
        assert any(line.startswith(f"2026-11-0{day}: succeeded growing-") for line in lines), done.stdout

    header = next(line for line in lines if line.startswith("run date"))
    columns = ["run date", "task", "input rows", "size chosen", "how", "peak used", "cost", "static peak sizing"]
    assert [c.strip() for c in header.split("  ") if c.strip()] == columns
    rows = {line.split()[0]: line for line in lines if line.startswith("2026-11-0") and "  cards  " in line}
    assert sorted(rows) == [f"2026-11-0{day}" for day in range(1, 6)]
    assert f"{400 * 1:,}" in rows["2026-11-01"] and f"{400 * 5:,}" in rows["2026-11-05"]
    assert "declared guess" in rows["2026-11-01"], rows["2026-11-01"]
    for day in ("2026-11-02", "2026-11-03"):  # the first run measured the real bytes per row
        assert "measured" in rows[day], rows[day]
    for day in ("2026-11-04", "2026-11-05"):
        assert "learned" in rows[day], rows[day]
    assert "static peak sizing" in done.stdout and "learned sizes from 2026-11-04" in done.stdout

    store = Store.open(None, isolated_headrace)
    try:
        history = store.history("growing", "cards")
        decisions = store.decisions("growing", "cards")
    finally:
        store.close()
    assert len(history) == 5 and len(decisions) == 5
    peaks = [obs.peak_memory_bytes or 0 for obs in sorted(history, key=lambda o: o.input_rows)]
    # 400 more rows a day at 64 KiB each: the peaks the control room learns from really grow.
    assert peaks == sorted(peaks) and peaks[-1] - peaks[0] > 0.8 * 1600 * 64 * 1024, peaks
