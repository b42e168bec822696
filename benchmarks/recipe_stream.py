"""The README's main job, timed: the recipe stream end to end on the embedded default.

Runs ``headrace run examples/recipe_stream:pipeline`` exactly as the README does (a fresh state
folder, each task in its own process, the control room in-process), first on an even-mix day
(the model is trained), then on an 80/15/5 day (the model is reused), and reports wall time and
the sizes the control room chose for the per-class follow-ups. Then times the sample-data
generator at a benchmark size (``--rows``, 10M for the full figure). Target (issue 8): each run
under 60 s at the default 10k rows on a 2-core machine.

    .venv/bin/python benchmarks/recipe_stream.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SPEC = "examples/recipe_stream:pipeline"
DAYS = (dt.date(2026, 11, 23), dt.date(2026, 12, 1))  # a Monday with an even mix, a skewed Tuesday
FOLLOW_UPS = ("shopping-lists", "reminders", "refresh")


def run_main_job(state: Path, day: dt.date) -> tuple[float, dict[str, str]]:
    """Wall seconds of one ``headrace run`` and each follow-up's chosen size."""
    env = {**os.environ, "HEADRACE_STATE_DIR": str(state)}
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", SPEC, "-p", f"run_date={day}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"headrace run failed for {day}:\n{done.stdout}\n{done.stderr}")
    sizes = {}
    for line in done.stdout.splitlines():  # piped: plain lines, one per task, nothing cut
        name = line.split()[0] if line.split() else ""
        if name in FOLLOW_UPS and "mem " in line:
            sizes[name] = line.rpartition("mem ")[2].split()[0]
    return seconds, sizes


def time_generator(rows: int) -> tuple[float, int, int]:
    """Seconds, bytes written and peak RSS (bytes) of writing one day at ``rows`` rows."""
    sys.path.insert(0, str(ROOT))
    from examples.recipe_stream import data

    with tempfile.TemporaryDirectory(prefix="recipe-bench-") as tmp:
        started = time.perf_counter()
        written = data.write_day(Path(tmp), dt.date(2026, 12, 1), rows=rows)
        seconds = time.perf_counter() - started
        size = sum(t.path.stat().st_size for t in written)
    return seconds, size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the generator timing (10M: full)")
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"recipe stream, main job ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    for column in ("run", "run_date", "wall", "shopping-lists", "reminders", "refresh"):
        table.add_column(column)
    with tempfile.TemporaryDirectory(prefix="recipe-main-") as tmp:
        state = Path(tmp) / ".headrace"
        for label, day in zip(("first (trains)", "second (reuses model)"), DAYS, strict=True):
            seconds, sizes = run_main_job(state, day)
            table.add_row(label, day.isoformat(), f"{seconds:.1f} s", *(sizes.get(name, "") for name in FOLLOW_UPS))
    console.print(table)
    seconds, size, peak = time_generator(args.rows)
    generator = Table(title="sample-data generator (one day: items + yesterday's events)")
    for column in ("items rows", "seconds", "rows/s", "Parquet", "peak RSS"):
        generator.add_column(column)
    generator.add_row(
        f"{args.rows:,}",
        f"{seconds:.1f}",
        f"{args.rows / seconds:,.0f}",
        f"{size / 1e6:.0f} MB",
        f"{peak / 1e6:.0f} MB",
    )
    console.print(generator)


if __name__ == "__main__":
    main()
