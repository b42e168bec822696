"""The README's main job, the code before the start-up work and now, side by side in one run.

Every side runs ``headrace run examples/recipe_stream:pipeline`` exactly as the README does, each
from its own copy of the project (the earlier one is ``git archive`` of ``--before``, by default
the commit before the issue-18 work: no frontier, no fork-server preloading, no warm framework
interpreter) with the same virtual environment, on fresh state: day 1 trains the model, day 2
(same state) reuses it.

Two comparisons, because the example itself changed after ``--before``: since then each follow-up
renders a 64 KiB card per item (so its memory is real), which the earlier example did not do.

- **same pipeline**: the earlier example on both code bases (its imports renamed to the modules'
  new places, nothing else changed): what the start-up work did to the same job;
- **README as it is**: each side's own example (the now side does the card work on top).

Rounds alternate the order of the sides, so load that comes and goes hits all of them; the
table shows each side's median (min-max) and the median of the per-round ratios. CPU is user +
system of every process the run started. The machine is shared, so read the ratios; the load
average is printed with them.

Bytecode caching is on for all (``PYTHONDONTWRITEBYTECODE`` removed) and each side runs once
unmeasured first: a user's machine has its ``.pyc`` files and, for the new code, the framework
environment (built once, ~3.5 minutes) and what its servers learned to preload (kept in the user's
cache, ``~/.cache/headrace``, which a fresh state folder does not reset).

    .venv/bin/python benchmarks/main_job_before_after.py [--rounds 9] [--before 9b8dbda]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
SPEC = "examples/recipe_stream:pipeline"
DAYS = (dt.date(2026, 11, 23), dt.date(2026, 12, 1))  # a Monday (trains), a Tuesday (reuses the model)
#: The commit before the issue-18 work (frontier runner, preloading fork server, warm interpreters).
BEFORE = "9b8dbda"


#: Where the earlier example's imports moved (the layout work, issue 13); the only change made to
#: it for the same-pipeline comparison.
MOVED_MODULES = {
    "steps.context": "steps.runtime.context",
    "steps.values": "steps.runtime.values",
    "steps.contract": "steps.core.contract",
    "steps.errors": "steps.core.errors",
}


def checkout(ref: str, target: Path) -> Path:
    """The project at ``ref``, unpacked into ``target`` (the repository itself is not touched)."""
    archive = target / "before.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    tree = target / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


def ported_example(before: Path, target: Path) -> Path:
    """A folder holding only the earlier tree's ``examples/``, its imports of moved modules renamed."""
    folder = target / "earlier-example"
    shutil.copytree(before / "examples", folder / "examples")
    for path in (folder / "examples").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for old, new in MOVED_MODULES.items():
            text = re.sub(rf"\bfrom {re.escape(old)} import\b", f"from {new} import", text)
        path.write_text(text, encoding="utf-8")
    return folder


@dataclass(frozen=True)
class Side:
    """One way of running the job: the project copy whose code runs, and the folder it runs in
    (where ``examples/`` is read from)."""

    code: Path
    folder: Path


def run_day(side: Side, state: Path, day: dt.date) -> tuple[float, float]:
    """Wall and CPU seconds of one ``headrace run`` of ``side``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HEADRACE_STATE_DIR=str(state), PYTHONPATH=str(side.code))
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", SPEC, "-p", f"run_date={day}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=side.folder, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"headrace run failed in {side} for {day}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def both_days(side: Side, scratch: Path) -> list[tuple[float, float]]:
    """Day 1 then day 2 on one fresh state folder; (wall, CPU) of each."""
    state = Path(tempfile.mkdtemp(prefix="state-", dir=scratch)) / ".headrace"
    try:
        return [run_day(side, state, day) for day in DAYS]
    finally:
        shutil.rmtree(state.parent, ignore_errors=True)


def spread(values: list[float], unit: str = " s", digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f}{unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--before", default=BEFORE, help="the earlier commit (default: before the issue-18 work)")
    args = parser.parse_args()
    console = Console(width=200)
    with tempfile.TemporaryDirectory(prefix="main-job-") as tmp:
        scratch = Path(tmp)
        before = checkout(args.before, scratch)
        sides = {
            "before": Side(before, before),
            "now, the earlier example": Side(ROOT, ported_example(before, scratch)),
            "now": Side(ROOT, ROOT),
        }
        for side in sides.values():  # unmeasured: .pyc files, what the servers learn to preload
            both_days(side, scratch)
        loads = [os.getloadavg()[0]]
        results: dict[str, list[list[tuple[float, float]]]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            order = list(sides)[round_ % len(sides) :] + list(sides)[: round_ % len(sides)]
            for name in order:
                results[name].append(both_days(sides[name], scratch))
                loads.append(os.getloadavg()[0])
    title = (
        f"README main job, before ({args.before}) and now, {args.rounds} rounds side by side "
        f"({os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f})"
    )
    table = Table(title=title)
    for column in (
        "pipeline",
        "run",
        "before wall",
        "now wall",
        "now ÷ before (wall)",
        "before CPU",
        "now CPU",
        "now ÷ before (CPU)",
    ):
        table.add_column(column)
    comparisons = (("same (the earlier example)", "now, the earlier example"), ("README as it is", "now"))
    for pipeline, now in comparisons:
        for index, label in enumerate(("day 1 (trains)", "day 2 (reuses the model)")):
            walls = {name: [r[index][0] for r in results[name]] for name in ("before", now)}
            cpus = {name: [r[index][1] for r in results[name]] for name in ("before", now)}
            wall_ratio = [n / b for n, b in zip(walls[now], walls["before"], strict=True)]
            cpu_ratio = [n / b for n, b in zip(cpus[now], cpus["before"], strict=True)]
            table.add_row(
                pipeline,
                label,
                spread(walls["before"]),
                spread(walls[now]),
                spread([100 * r for r in wall_ratio], "%", 0),
                spread(cpus["before"]),
                spread(cpus[now]),
                spread([100 * r for r in cpu_ratio], "%", 0),
            )
    console.print(table)
    console.print("Target (issue 18): the main job at <= 40% of the earlier wall time.")


if __name__ == "__main__":
    main()
