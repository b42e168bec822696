"""How the local runner's cost grows with the number of tasks: a curve, both modes.

Two shapes of trivial tasks, each run with ``headrace run`` as a user types it (a new process,
output to a file as in CI):

- ``fan-out``: one start task, N branches reading its output, one join reading all N;
- ``chain``: N tasks, each reading the one before.

For each shape, size and mode (``in-process``; ``subprocess``: each task a process forked from
the run's fork server) the table shows the run's own duration from its record in ``runs.db``
(what ``run ... succeeded in`` rounds: scheduling, records and task processes, without the
interpreter's start-up)
per task, the median of ``--repeat`` runs with the spread (min-max), and the ratio of the largest
size to the smallest, against a linear ratio. Targets (issue 18): <= 5 ms per task in-process,
<= 25 ms per task in subprocess mode, at 10,000 tasks; a 1,000-way fan-out costs <= 12x a 100-way one.

    .venv/bin/python benchmarks/scaling.py [--sizes 100,1000,10000] [--repeat 3] [--modes in-process,subprocess]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from rich.console import Console
from rich.table import Table

FLOW = """
import os
from pipelines import Pipeline, step

N = int(os.environ["SCALING_TASKS"])
SHAPE = os.environ["SCALING_SHAPE"]


@step
def start():
    return 1


@step
def work(x=None):
    return 1


@step
def join(**parts):
    return len(parts)


with Pipeline("scaling") as pipeline:
    if SHAPE == "fan-out":
        first = start()
        join(**{f"b{i}": work(x=first, name=f"b-{i}") for i in range(N - 2)})
    else:
        value = start()
        for i in range(N - 1):
            value = work(x=value, name=f"c-{i}")
"""

TARGETS = {"in-process": 5.0, "subprocess": 25.0}


def run_once(folder: Path, shape: str, tasks: int, mode: str) -> float:
    """Seconds the runner reports for one run."""
    env = {**os.environ, "SCALING_TASKS": str(tasks), "SCALING_SHAPE": shape, "COLUMNS": "200"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "run", "flow:pipeline"]
    if mode == "in-process":
        command.append("--in-process")
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{shape} {tasks} {mode}: run failed\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    # The run record's own start and end (what "succeeded in" rounds for people to read).
    with contextlib.closing(sqlite3.connect(folder / ".headrace" / "runs.db")) as runs:
        started, finished = runs.execute("SELECT started, finished FROM runs ORDER BY started DESC LIMIT 1").fetchone()
    return float(finished - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default="in-process,subprocess")
    parser.add_argument("--shapes", default="fan-out,chain")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    console = Console(width=200)
    table = Table(title=f"Local runner, ms per task: median (min-max) of {options.repeat} runs")
    for column in (
        "shape",
        "mode",
        *[f"{s:,} tasks" for s in sizes],
        f"x{sizes[-1] // sizes[0]} tasks costs",
        "target",
    ):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="headrace-scaling-") as tmp:
        folder = Path(tmp)
        (folder / "flow.py").write_text(textwrap.dedent(FLOW))
        for shape in options.shapes.split(","):
            for mode in options.modes.split(","):
                medians: list[float] = []
                cells: list[str] = []
                for size in sizes:
                    seconds = [run_once(folder, shape, size, mode) for _ in range(options.repeat)]
                    per_task = [s * 1000 / size for s in seconds]
                    shown = ", ".join(f"{ms:.2f}" for ms in per_task)
                    console.print(
                        f"[dim]{shape} {mode} {size:,} tasks: {shown} ms per task (load {os.getloadavg()[0]:.1f})[/]"
                    )
                    medians.append(statistics.median(seconds))
                    cells.append(f"{statistics.median(per_task):.2f} ({min(per_task):.2f}-{max(per_task):.2f})")
                growth = medians[-1] / medians[0]
                table.add_row(
                    shape,
                    mode,
                    *cells,
                    f"{growth:.1f}x (linear {sizes[-1] / sizes[0]:.0f}x)",
                    f"<= {TARGETS.get(mode, 0):g} ms",
                )
    console.print(table)


if __name__ == "__main__":
    main()
