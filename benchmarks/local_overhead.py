"""Per-task overhead of ``headrace run`` (subprocess and in-process) against Metaflow's local run.

Runs the same flows with both tools, end to end as a user types them, and prints one table:

- ``linear-10``: ten trivial tasks in a chain;
- ``fan-20``: a start task, twenty branches (Metaflow: a foreach), a join;
- ``bytes-10x10MB``: the ten-task chain with every task passing 10 MB to the next;
- ``single``: one trivial task, the fixed cost of starting the tool (subtracted for "marginal").

headrace runs three ways: ``subprocess`` (the default: each task a process forked from the run's
fork server), ``exec`` (``--no-fork-server``: a fresh ``python -m steps run`` per task, exactly a
pod's command) and ``in-process`` (``--in-process``).

"per task" is wall time / tasks; "marginal" is (wall - single's wall) / (extra tasks): what one more
task costs once the tool is up; "CPU marginal" the same in CPU time (user + system of every process),
which a busy machine inflates far less than wall time. The flows run in rounds (every flow once per
round, ``single`` included), each marginal is computed within its round, and the tables show the
median over rounds with the spread (min-max): no subtraction of two independent best-of figures,
which went negative under noise. Metaflow's single flow has two steps
(start, end), so its extra tasks are counted from two. Targets (issue 3): in-process <= 20 ms/task, subprocess <= 150
ms/task, both >= 5x faster than Metaflow. Needs the ``[bench]`` extra (``pip install metaflow``).

    .venv/bin/python benchmarks/local_overhead.py [--repeat 3] [--skip-metaflow]

Bytecode caching is switched on for every child (``PYTHONDONTWRITEBYTECODE`` removed): a user's
machine caches ``.pyc`` files, and without them both tools spend most of their time compiling.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

MB10 = 10 * 1024 * 1024

HEADRACE_FLOWS = {
    "single": """
        from pipelines import Pipeline, step

        @step
        def only():
            return 1

        with Pipeline("single") as pipeline:
            only()
    """,
    "linear-10": """
        from pipelines import Pipeline, step

        @step
        def first():
            return 0

        @step
        def inc(x):
            return x.read_json() + 1

        with Pipeline("linear-10") as pipeline:
            value = first()
            for i in range(9):
                value = inc(x=value, name=f"inc-{i}")
    """,
    "fan-20": """
        from pipelines import Pipeline, step

        @step
        def start():
            return 1

        @step
        def branch(x, k):
            return x.read_json() * k

        @step
        def join(parts):
            return sum(p.read_json() for p in parts)

        with Pipeline("fan-20") as pipeline:
            s = start()
            join(parts=[branch(x=s, k=k, name=f"branch-{k}") for k in range(20)])
    """,
    "bytes-10x10MB": f"""
        from pipelines import Pipeline, step

        @step
        def first():
            return bytes({MB10})

        @step
        def pass_on(x):
            data = x.local_path().read_bytes()
            return data[::-1]

        with Pipeline("bytes-10x10mb") as pipeline:
            value = first()
            for i in range(9):
                value = pass_on(x=value, name=f"pass-{{i}}")
    """,
}

METAFLOW_FLOWS = {
    "single": """
        from metaflow import FlowSpec, step

        class Single(FlowSpec):
            @step
            def start(self):
                self.value = 1
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            Single()
    """,
    "linear-10": """
        from metaflow import FlowSpec, step

        class Linear(FlowSpec):
            @step
            def start(self):
                self.value = 0
                self.next(self.s1)
        {steps}
            @step
            def end(self):
                self.value += 1

        if __name__ == "__main__":
            Linear()
    """,
    "fan-20": """
        from metaflow import FlowSpec, step

        class Fan(FlowSpec):
            @step
            def start(self):
                self.ks = list(range(20))
                self.next(self.branch, foreach="ks")

            @step
            def branch(self):
                self.value = self.input
                self.next(self.join)

            @step
            def join(self, inputs):
                self.total = sum(i.value for i in inputs)
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            Fan()
    """,
    "bytes-10x10MB": """
        from metaflow import FlowSpec, step

        class Bytes(FlowSpec):
            @step
            def start(self):
                self.value = bytes(__MB10__)
                self.next(self.s1)
        {steps}
            @step
            def end(self):
                self.value = self.value[::-1]

        if __name__ == "__main__":
            Bytes()
    """.replace("__MB10__", str(MB10)),
}

#: Tasks each flow runs (Metaflow's fan-20 also has an `end` step: 23 vs headrace's 22).
TASKS = {"single": 1, "linear-10": 10, "fan-20": 22, "bytes-10x10MB": 10}
METAFLOW_TASKS = {"single": 2, "linear-10": 10, "fan-20": 23, "bytes-10x10MB": 10}


def _metaflow_chain(body: str, transform: str) -> str:
    steps = ""
    for i in range(1, 9):
        nxt = f"s{i + 1}" if i < 8 else "end"
        steps += f"""
            @step
            def s{i}(self):
                self.value = {transform}
                self.next(self.{nxt})
        """
    return body.replace("{steps}", textwrap.indent(textwrap.dedent(steps), "    "))


def write_flows(folder: Path) -> None:
    for name, body in HEADRACE_FLOWS.items():
        (folder / f"hr_{name.replace('-', '_')}.py").write_text(textwrap.dedent(body))
    for name, body in METAFLOW_FLOWS.items():
        if name == "linear-10":
            body = _metaflow_chain(textwrap.dedent(body), "self.value + 1")
        elif name == "bytes-10x10MB":
            body = _metaflow_chain(textwrap.dedent(body), "self.value[::-1]")
        else:
            body = textwrap.dedent(body)
        (folder / f"mf_{name.replace('-', '_')}.py").write_text(body)


@dataclass
class Measure:
    """One flow on one engine: wall and CPU seconds of each round, and the marginals per round."""

    engine: str
    flow: str
    tasks: int
    walls: list[float]
    cpus: list[float]
    marginal_walls: list[float] | None = None
    marginal_cpus: list[float] | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def spread_ms(values: list[float]) -> str:
    """Median in ms with the min-max spread."""
    return f"{statistics.median(values) * 1000:.0f} ms ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the command and every process it waited for):
    CPU time barely changes with the machine's load, wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:4])} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-metaflow", action="store_true")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 160)
    folder = Path(tempfile.mkdtemp(prefix="headrace-bench-"))
    write_flows(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_", "METAFLOW_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HEADRACE_STATE_DIR=str(folder / ".headrace"),
        USERNAME="bench",
        METAFLOW_DEFAULT_DATASTORE="local",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(folder / ".metaflow"),
        METAFLOW_HOME=str(folder / ".metaflowconfig"),
    )
    headrace = [sys.executable, "-c", "from pipelines.cli import main; main()", "run"]
    engines: dict[str, Callable[[str], list[str]]] = {
        "headrace subprocess": lambda flow: [*headrace, f"hr_{flow.replace('-', '_')}.py:pipeline"],
        "headrace exec": lambda flow: [*headrace, f"hr_{flow.replace('-', '_')}.py:pipeline", "--no-fork-server"],
        "headrace in-process": lambda flow: [*headrace, f"hr_{flow.replace('-', '_')}.py:pipeline", "--in-process"],
    }
    if not args.skip_metaflow:
        try:
            import metaflow  # noqa: F401
        except ImportError:
            raise SystemExit("Metaflow is not installed: pip install 'headrace[bench]' (or --skip-metaflow)") from None
        engines["metaflow local run"] = lambda flow: [
            sys.executable,
            f"mf_{flow.replace('-', '_')}.py",
            "--quiet",
            "--no-pylint",
            "run",
        ]
    results: list[Measure] = []
    with console.status("warming up (bytecode caches)"):
        for make in engines.values():
            timed(make("single"), folder, env)
    for engine, make in engines.items():
        rounds: dict[str, list[tuple[float, float]]] = {flow: [] for flow in TASKS}
        for round_number in range(args.repeat):
            for flow in TASKS:  # `single` first: each round has its own baseline
                with console.status(f"{engine}: {flow} (round {round_number + 1} of {args.repeat})"):
                    rounds[flow].append(timed(make(flow), folder, env))
        counts = METAFLOW_TASKS if engine.startswith("metaflow") else TASKS
        base = rounds["single"]
        for flow, runs in rounds.items():
            measure = Measure(engine, flow, counts[flow], [r[0] for r in runs], [r[1] for r in runs])
            if flow != "single":
                extra = max(1, counts[flow] - counts["single"])
                measure.marginal_walls = [(r[0] - b[0]) / extra for r, b in zip(runs, base, strict=True)]
                measure.marginal_cpus = [(r[1] - b[1]) / extra for r, b in zip(runs, base, strict=True)]
            results.append(measure)
    render(console, results)
    try:
        api_table(console, folder, env, args.repeat)
    finally:
        os.chdir(tempfile.gettempdir())
        shutil.rmtree(folder, ignore_errors=True)


def api_table(console: Console, folder: Path, env: dict[str, str], repeat: int) -> None:
    """Per-task cost of ``run_pipeline`` itself, called from an already started process (what
    backfill does): no interpreter start, no CLI, no control room; the runner and its records."""
    from pipelines.local import run_pipeline
    from steps.core.settings import load_settings
    from steps.runtime.loader import load_object

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["HEADRACE_STATE_DIR"] = env["HEADRACE_STATE_DIR"]
    os.chdir(folder)
    settings = load_settings()
    modes: dict[str, dict[str, bool]] = {
        "subprocess": {},
        "exec": {"fork_server": False},
        "in-process": {"in_process": True},
    }
    table = Table(
        title="run_pipeline() per task, process already started: median (min-max); each run's fixed costs "
        "(fork server, run records) are spread over its tasks",
        title_justify="left",
    )
    for column in ("flow", "mode", "tasks", "wall/task", "CPU/task (runner + tasks)"):
        table.add_column(column, justify="left" if column in ("flow", "mode") else "right", no_wrap=True)
    for flow in ("linear-10", "fan-20"):
        spec = f"hr_{flow.replace('-', '_')}.py:pipeline"
        pipeline = load_object(spec)
        for mode, options in modes.items():
            walls: list[float] = []
            cpus: list[float] = []
            run_pipeline(pipeline, spec=spec, settings=settings, live=False, **options)  # type: ignore[arg-type]
            for _ in range(repeat):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu0, wall0 = time.process_time(), time.perf_counter()
                summary = run_pipeline(pipeline, spec=spec, settings=settings, live=False, **options)  # type: ignore[arg-type]
                walls.append(time.perf_counter() - wall0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                children = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                cpus.append(time.process_time() - cpu0 + children)
                if summary.status != "succeeded":
                    raise SystemExit(f"run_pipeline {spec} ({mode}) {summary.status}")
            tasks = TASKS[flow]
            table.add_row(
                flow, mode, str(tasks), spread_ms([w / tasks for w in walls]), spread_ms([c / tasks for c in cpus])
            )
        table.add_section()
    console.print(table)


def render(console: Console, results: list[Measure]) -> None:
    by_key = {(m.engine, m.flow): m for m in results}
    engines = list(dict.fromkeys(m.engine for m in results))
    table = Table(
        title=f"local run overhead: median (min-max) over rounds, {os.cpu_count()} cores", title_justify="left"
    )
    columns = ("flow", "engine", "tasks", "wall", "wall/task", "marginal wall", "marginal CPU", "Metaflow ÷ this")
    for column in columns:
        table.add_column(column, justify="left" if column in ("flow", "engine") else "right", no_wrap=True)
    for flow in TASKS:
        for engine in engines:
            m = by_key.get((engine, flow))
            if m is None:
                continue
            ratio = ""
            mf = by_key.get(("metaflow local run", flow))
            if mf is not None and not engine.startswith("metaflow") and m.marginal_walls and mf.marginal_walls:
                ours, theirs = statistics.median(m.marginal_walls), statistics.median(mf.marginal_walls)
                ours_cpu = statistics.median(m.marginal_cpus or [0.0])
                theirs_cpu = statistics.median(mf.marginal_cpus or [0.0])
                ratio = (
                    f"{theirs / ours:.1f}x wall, {theirs_cpu / ours_cpu:.1f}x CPU"
                    if ours > 0 and ours_cpu > 0
                    else "within noise"
                )
            table.add_row(
                flow,
                engine,
                str(m.tasks),
                f"{m.seconds:.2f} s" + (f" ({m.cpu:.2f} s CPU)" if flow == "single" else ""),
                f"{m.seconds / m.tasks * 1000:.0f} ms",
                "" if m.marginal_walls is None else spread_ms(m.marginal_walls),
                "" if m.marginal_cpus is None else spread_ms(m.marginal_cpus),
                ratio,
            )
        table.add_section()
    console.print(table)
    console.print(
        "marginal = (flow - single of the same round) / extra tasks: one more task once the tool is up. CPU = user + "
        "system of every process, which a busy machine inflates far less than wall time."
    )
    for engine in engines:
        big = by_key.get((engine, "bytes-10x10MB"))
        small = by_key.get((engine, "linear-10"))
        if big and small:
            extra_wall = (big.seconds - small.seconds) / 10
            extra_cpu = (big.cpu - small.cpu) / 10
            console.print(
                f"10 MB per task, {engine}: +{extra_wall * 1000:.0f} ms wall, +{extra_cpu * 1000:.0f} ms CPU per task "
                "over trivial tasks (medians; each task reads 10 MB and writes 10 MB)"
            )


if __name__ == "__main__":
    main()
