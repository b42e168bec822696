"""The README's main job, the code before the start-up work and now, side by side in one run.

Both sides run ``headrace run examples/recipe_stream:pipeline`` exactly as the README does, each
from its own copy of the project (the earlier one is ``git archive`` of ``--before``, by default
the commit before the issue-18 work: no frontier, no fork-server preloading, no warm framework
interpreter) with the same virtual environment, on fresh state: day 1 trains the model, day 2
(same state) reuses it. Rounds alternate which side goes first, so load that comes and goes hits
both; the table shows each side's median (min-max) and the median of the per-round ratios. CPU is
user + system of every process the run started. The machine is shared, so read the ratios; the
load average is printed with them.

Bytecode caching is on for both (``PYTHONDONTWRITEBYTECODE`` removed) and each side runs once
unmeasured first: a user's machine has its ``.pyc`` files and, for the new side, the framework
environment (built once, ~3.5 minutes) and what its warm interpreter learned to preload.

    .venv/bin/python benchmarks/main_job_before_after.py [--rounds 3] [--before 9b8dbda]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SPEC = "examples/recipe_stream:pipeline"
DAYS = (dt.date(2026, 11, 23), dt.date(2026, 12, 1))  # a Monday (trains), a Tuesday (reuses the model)
#: The commit before the issue-18 work (frontier runner, preloading fork server, warm interpreters).
BEFORE = "9b8dbda"


def checkout(ref: str, target: Path) -> Path:
    """The project at ``ref``, unpacked into ``target`` (the repository itself is not touched)."""
    archive = target / "before.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    tree = target / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def run_day(tree: Path, state: Path, day: dt.date) -> tuple[float, float]:
    """Wall and CPU seconds of one ``headrace run`` from the project copy at ``tree``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HEADRACE_STATE_DIR=str(state), PYTHONPATH=str(tree))
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", SPEC, "-p", f"run_date={day}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"headrace run failed in {tree} for {day}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def both_days(tree: Path, scratch: Path) -> list[tuple[float, float]]:
    """Day 1 then day 2 on one fresh state folder; (wall, CPU) of each."""
    state = Path(tempfile.mkdtemp(prefix="state-", dir=scratch)) / ".headrace"
    try:
        return [run_day(tree, state, day) for day in DAYS]
    finally:
        shutil.rmtree(state.parent, ignore_errors=True)


def spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="the earlier commit (default: before the issue-18 work)")
    args = parser.parse_args()
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="main-job-") as tmp:
        scratch = Path(tmp)
        sides = {"before": checkout(args.before, scratch), "now": ROOT}
        for tree in sides.values():  # unmeasured: .pyc files, the warm interpreter's learned imports
            both_days(tree, scratch)
        loads = [os.getloadavg()[0]]
        results: dict[str, list[list[tuple[float, float]]]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
            for name in order:
                results[name].append(both_days(sides[name], scratch))
                loads.append(os.getloadavg()[0])
    title = (
        f"README main job, before ({args.before}) and now, {args.rounds} rounds side by side "
        f"({os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f})"
    )
    table = Table(title=title)
    for column in (
        "run",
        "before wall",
        "now wall",
        "now ÷ before (wall)",
        "before CPU",
        "now CPU",
        "now ÷ before (CPU)",
    ):
        table.add_column(column)
    for index, label in enumerate(("day 1 (trains)", "day 2 (reuses the model)")):
        walls = {name: [r[index][0] for r in results[name]] for name in sides}
        cpus = {name: [r[index][1] for r in results[name]] for name in sides}
        wall_ratio = [now / before for now, before in zip(walls["now"], walls["before"], strict=True)]
        cpu_ratio = [now / before for now, before in zip(cpus["now"], cpus["before"], strict=True)]
        table.add_row(
            label,
            spread(walls["before"]),
            spread(walls["now"]),
            spread([100 * r for r in wall_ratio], "%", 0),
            spread(cpus["before"]),
            spread(cpus["now"]),
            spread([100 * r for r in cpu_ratio], "%", 0),
        )
    console.print(table)
    console.print("Target (issue 18): the main job at <= 40% of the earlier wall time.")


if __name__ == "__main__":
    main()
