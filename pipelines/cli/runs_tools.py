"""Looking inside local runs: one output (``runs show RUN --output TASK[.NAME]``), two runs side by
side (``runs diff A B``), and retention (``runs rm``).

An output is shown for what it is: a table as its row count, size, schema and first rows; a JSON
value as the value; anything else as its location and size. ``runs diff`` lines up what differs
between two runs (parameters, sizes chosen, durations, output sizes) so a slow or costly day can
be compared with a normal one. ``runs rm`` forgets run records and deletes their outputs, by id or
by age, and never touches a run still running.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from pipelines.cli.common import console, fail, guard, settings_from
from pipelines.cli.output import print_table
from pipelines.plain import plural
from steps.core.display import format_bytes

if TYPE_CHECKING:
    from pipelines.runs import OutputRecord, RunStore

HEAD_ROWS = 10
RUN_IDS: Any = typer.Argument(None, help="Run ids to remove.")
AGE = re.compile(r"^(\d+)([dhm])$")


def _store() -> RunStore:
    from pipelines.runs import RunStore

    return RunStore.for_settings(settings_from())


def show_output(store: RunStore, run_id: str, which: str) -> None:
    """Print one output of a run: ``TASK`` (its only or ``result`` output) or ``TASK.NAME``."""
    from steps.runtime.values import Artifact
    from steps.storage.artifacts import store_for_uri

    task, _, name = which.partition(".")
    outputs = {(o.task, o.output): o for o in store.outputs(run_id)}
    of_task = [o for (t, _), o in outputs.items() if t == task]
    if not of_task:
        tasks = sorted({t for t, _ in outputs})
        fail(f"--output {which}: run {run_id} has no output of task {task!r}; tasks with outputs: {', '.join(tasks)}")
    chosen: OutputRecord | None
    if name:
        chosen = outputs.get((task, name))
    else:
        chosen = outputs.get((task, "result")) or (of_task[0] if len(of_task) == 1 else None)
    if chosen is None:
        names = ", ".join(f"{task}.{o.output}" for o in of_task)
        fail(f"--output {which}: task {task} of run {run_id} has outputs {names}; name one")
    ref = chosen.ref
    rows = "" if ref.rows is None else f", {plural(ref.rows, 'row')}"
    console.print(
        f"{task}.{chosen.output}: {ref.format}, {format_bytes(ref.bytes)}{rows}", highlight=False, soft_wrap=True
    )
    console.print(ref.uri, highlight=False, soft_wrap=True)
    artifact = Artifact(ref, store_for_uri(ref.uri))
    if ref.format == "parquet":
        import pyarrow.parquet as pq

        path = artifact.local_path()
        schema = pq.read_schema(path)
        console.print("schema:", highlight=False, soft_wrap=True)
        for field in schema:
            console.print(f"  {field.name}: {field.type}", highlight=False, soft_wrap=True)
        head = pq.ParquetFile(path).iter_batches(batch_size=HEAD_ROWS)
        first = next(head, None)
        if first is not None:
            frame = first.to_pandas()
            print_table(
                f"first {plural(len(frame), 'row')}",
                [str(c) for c in frame.columns],
                [[str(v) for v in row] for row in frame.itertuples(index=False)],
            )
    elif ref.format == "json":
        import json

        console.print(json.dumps(artifact.read_json(), indent=2, sort_keys=True), highlight=False, soft_wrap=True)


def _attempt_facts(store: RunStore, run_id: str) -> dict[str, dict[str, str]]:
    facts: dict[str, dict[str, str]] = {}
    for attempt in store.attempts(run_id):  # later attempts overwrite earlier ones: the last counts
        sizing = attempt.sizing or {}
        size = " ".join(str(sizing.get(k) or "") for k in ("instance_type", "memory")).strip()
        facts.setdefault(attempt.task, {}).update(
            {
                "size": size,
                "time": "" if attempt.duration is None else f"{attempt.duration:.1f}s",
                "tries": str(attempt.attempt),
                "status": attempt.status,
            }
        )
    for out in store.outputs(run_id):
        entry = facts.setdefault(out.task, {})
        rows = "" if out.rows is None else f", {plural(out.rows, 'row')}"
        entry[f"out {out.output}"] = f"{format_bytes(out.bytes)}{rows}"
    return facts


def diff_runs(store: RunStore, first: str, second: str) -> list[list[str]]:
    """What differs between two runs: parameters, then per task its size, time, tries and outputs."""
    records = {}
    for run_id in (first, second):
        record = store.get_run(run_id)
        if record is None:
            fail(f"run {run_id}: not found; list runs with `headrace runs list`")
        records[run_id] = record
    rows: list[list[str]] = []
    a, b = records[first], records[second]
    if a.pipeline != b.pipeline:
        rows.append(["run", "pipeline", a.pipeline, b.pipeline])
    for key in sorted(set(a.params) | set(b.params)):
        if a.params.get(key) != b.params.get(key):
            rows.append(["param", key, a.params.get(key, ""), b.params.get(key, "")])
    left, right = _attempt_facts(store, first), _attempt_facts(store, second)
    for task in sorted(set(left) | set(right)):
        for key in sorted(set(left.get(task, {})) | set(right.get(task, {}))):
            old, new = left.get(task, {}).get(key, ""), right.get(task, {}).get(key, "")
            if old != new:
                rows.append([task, key, old, new])
    return rows


def parse_age(value: str) -> float:
    """``30d``, ``12h`` or ``45m`` as seconds."""
    match = AGE.match(value.strip())
    if not match:
        fail(f"--older-than {value!r}: give a number and d, h or m, e.g. 30d")
    number, unit = int(match.group(1)), match.group(2)
    return number * {"d": 86400, "h": 3600, "m": 60}[unit]


def add_to(runs_app: typer.Typer) -> None:
    """Add ``runs diff`` and ``runs rm`` to the ``runs`` command group."""

    @runs_app.command("diff")
    @guard
    def runs_diff(
        first: str = typer.Argument(..., help="A run id."),
        second: str = typer.Argument(..., help="The run to compare it with."),
    ) -> None:
        """What differs between two runs: parameters, sizes chosen, durations, output sizes."""
        store = _store()
        try:
            rows = diff_runs(store, first, second)
        finally:
            store.close()
        if not rows:
            console.print(
                f"runs {first} and {second}: same parameters, sizes, durations and outputs",
                highlight=False,
                soft_wrap=True,
            )
            return
        print_table(f"{first} -> {second}", ["task", "what", first, second], rows)

    @runs_app.command("rm")
    @guard
    def runs_rm(
        run_ids: list[str] | None = RUN_IDS,
        older_than: str | None = typer.Option(None, "--older-than", help="Every run that started before, e.g. 30d."),
        pipeline: str | None = typer.Option(None, "--pipeline", help="With --older-than: only this pipeline."),
        keep_outputs: bool = typer.Option(False, "--keep-outputs", help="Forget the records, keep the files."),
    ) -> None:
        """Remove run records and their outputs (logs, artifacts), by id or by age; never a running run."""
        if not run_ids and older_than is None:
            fail("runs rm: give run ids or --older-than (e.g. --older-than 30d)")
        settings = settings_from()
        store = _store()
        removed: list[str] = []
        try:
            targets = [store.get_run(r) for r in run_ids or []]
            for run_id, record in zip(run_ids or [], targets, strict=True):
                if record is None:
                    fail(f"run {run_id}: not found; list runs with `headrace runs list`")
            if older_than is not None:
                cutoff = time.time() - parse_age(older_than)
                targets += [r for r in store.list_runs(pipeline=pipeline, limit=1_000_000) if r.started < cutoff]
            for record in targets:
                assert record is not None
                if record.runner_alive:
                    console.print(f"run {record.id}: still running; kept", highlight=False, soft_wrap=True)
                    continue
                if not keep_outputs:
                    root = settings.artifact_root or str(Path(settings.state_dir) / "artifacts")
                    for folder in (
                        Path(root.removeprefix("file://")) / record.pipeline / record.id,
                        Path(settings.state_dir) / "runs" / record.id,
                    ):
                        shutil.rmtree(folder, ignore_errors=True)
                store.delete_run(record.id)
                removed.append(record.id)
        finally:
            store.close()
        when = "" if older_than is None else f" (started before {dt.datetime.fromtimestamp(cutoff):%Y-%m-%d %H:%M})"
        console.print(f"removed {plural(len(removed), 'run')}{when}", highlight=False, soft_wrap=True)
        for run_id in removed:
            console.print(f"  {run_id}", highlight=False, soft_wrap=True)


def output_option() -> Any:
    return typer.Option(
        None, "--output", help="Show one output: TASK or TASK.NAME (a table's schema and first rows, or the value)."
    )
