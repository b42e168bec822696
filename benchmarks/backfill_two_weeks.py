"""The README's second command, timed: two weeks of the recipe stream in one backfill.

Runs ``headrace backfill examples/recipe_stream:pipeline --from 2026-11-01 --to 2026-11-14 --local``
exactly as the README does (a fresh state folder, the embedded control room sizing every auto
task), and prints its wall and CPU time, the time per day, the machine's load, and the sizing
totals the command ends with. Target (issue 16): under 2 minutes on a 2-core machine.

    .venv/bin/python benchmarks/backfill_two_weeks.py [--from 2026-11-01] [--to 2026-11-14]
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
TARGET_SECONDS = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="start", default="2026-11-01")
    parser.add_argument("--to", dest="end", default="2026-11-14")
    args = parser.parse_args()
    days = (dt.date.fromisoformat(args.end) - dt.date.fromisoformat(args.start)).days + 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        env = {**os.environ, "HEADRACE_STATE_DIR": str(Path(tmp) / ".headrace")}
        command = [sys.executable, "-c", "from pipelines.cli import main; main()", "backfill", SPEC]
        command += ["--from", args.start, "--to", args.end, "--local"]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"headrace backfill failed:\n{done.stdout}\n{done.stderr}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    totals = next((line for line in done.stdout.splitlines() if "static peak sizing (" in line), "")
    learned = sum("learned" in line for line in done.stdout.splitlines() if line.startswith("20"))
    table = Table(title=f"two-week backfill ({os.cpu_count()} CPUs, load {load_before:.1f} before)")
    for column in ("days", "wall", "per day", "CPU (all processes)", "learned sizes", "target", "met"):
        table.add_column(column)
    table.add_row(
        str(days),
        f"{seconds:.1f} s",
        f"{seconds / days:.1f} s",
        f"{cpu:.1f} s",
        str(learned),
        f"< {TARGET_SECONDS:.0f} s",
        "yes" if seconds < TARGET_SECONDS else "no",
    )
    console = Console()
    console.print(table)
    console.print(totals, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
