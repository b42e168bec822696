"""Run one task of one pipeline: the same code in an Argo pod, a local subprocess or in-process.

The runner (Argo or local) gives the task its run id, attempt, parameters, the references of its
inputs and, for ``sizing="auto"`` tasks, the control room's decision. This module binds the
inputs, calls the step function, stores what it returns and describes the stored outputs, so the
next task and the control room know where they are and how big.

Deliberately light: it imports neither Hera nor pandas, so a trivial task starts in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from steps.core.contract import ArtifactRef, SizingDecision
from steps.core.errors import NotFoundError, StepFailed, UserError
from steps.core.settings import Settings
from steps.runtime.context import ProgressSink, StepContext, _no_progress
from steps.runtime.values import Artifact, UnstorableValue, write_value


class OutputRefLike(Protocol):
    task: str
    output: str


class TaskLike(Protocol):
    """What the entrypoint needs of a task (``pipelines.graph.Task`` fits)."""

    name: str
    fn: Callable[..., Any]
    outputs: tuple[str, ...]
    resources: Any

    def bind(self, params: Mapping[str, Any], load: Callable[[Any], Any]) -> dict[str, Any]: ...

    def input_refs(self) -> list[Any]: ...

    @property
    def wants_context(self) -> bool: ...


class PipelineLike(Protocol):
    """What the entrypoint needs of a pipeline (``pipelines.graph.Pipeline`` fits)."""

    name: str
    timezone: str

    def task(self, name: str) -> Any: ...

    def resolve_params(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]: ...

    def convert_params(self, raw: Mapping[str, str]) -> dict[str, Any]: ...


@dataclass
class TaskResult:
    """What one attempt produced: stored outputs plus what the run record keeps."""

    outputs: dict[str, ArtifactRef]
    duration_seconds: float
    peak_memory_bytes: int
    records: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outputs": {name: ref.to_dict() for name, ref in self.outputs.items()},
            "duration_seconds": self.duration_seconds,
            "peak_memory_bytes": self.peak_memory_bytes,
            "records": self.records,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        return cls(
            outputs={name: ArtifactRef.from_dict(ref) for name, ref in data["outputs"].items()},
            duration_seconds=float(data["duration_seconds"]),
            peak_memory_bytes=int(data["peak_memory_bytes"]),
            records=dict(data.get("records", {})),
        )


def resolve_run_date(value: str, timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The run's day: ``YYYY-MM-DD``, an RFC 3339 time (Argo's ``workflow.scheduledTime``), or
    today in the pipeline's time zone when empty."""
    text = value.strip()
    try:
        if len(text) == 10:  # the common case (the runners pass a day): no time zone database needed
            return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"parameter run_date: {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-01") from None
    import zoneinfo

    zone = zoneinfo.ZoneInfo(timezone)
    if not text:
        return (now or dt.datetime.now(tz=zone)).astimezone(zone).date()
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(zone).date()
    except ValueError:
        raise UserError(f"parameter run_date: {value!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-01") from None


def _annotation_loader(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> annotation's class name, read without importing what it names."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to raw strings
        hints = dict(getattr(fn, "__annotations__", {}))
    names: dict[str, str] = {}
    for name, hint in hints.items():
        label = hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))
        names[name] = str(label).rsplit(".", 1)[-1]
    return names


def _load_input(artifact: Artifact, annotation: str | None) -> Any:
    if annotation in ("DataFrame",):
        return artifact.read_pandas()
    if annotation in ("Table",):
        return artifact.read_arrow()
    if annotation in (None, "Artifact", "Any", "object"):
        return artifact
    if annotation in ("Path",):
        return artifact.local_path()
    return artifact.read()


def build_context(
    pipeline: PipelineLike,
    task: TaskLike,
    *,
    run_id: str,
    attempt: int,
    raw_params: Mapping[str, str],
    settings: Settings,
    sizing: SizingDecision | None = None,
    progress: ProgressSink = _no_progress,
    work_dir: Path | None = None,
) -> StepContext:
    run_date = resolve_run_date(raw_params.get("run_date", ""), pipeline.timezone)
    params = dict(raw_params)
    params["run_date"] = run_date.isoformat()
    resources = task.resources.to_dict() if hasattr(task.resources, "to_dict") else dict(task.resources or {})
    return StepContext(
        pipeline=pipeline.name,
        task=task.name,
        run_id=run_id,
        settings=settings,
        attempt=attempt,
        params=params,
        run_date=run_date,
        sizing=sizing,
        resources=resources,
        work_dir=work_dir or Path.cwd(),
        progress_sink=progress,
    )


def run_task(
    pipeline: PipelineLike,
    task_name: str,
    *,
    run_id: str,
    settings: Settings,
    attempt: int = 1,
    params: Mapping[str, str] | None = None,
    inputs: Mapping[tuple[str, str], ArtifactRef] | None = None,
    sizing: SizingDecision | None = None,
    progress: ProgressSink = _no_progress,
) -> TaskResult:
    """Run one task attempt and store its outputs; raises a :class:`HeadraceError` on failure."""
    started = time.perf_counter()
    task: TaskLike = pipeline.task(task_name)
    raw_params = pipeline.resolve_params(params)
    ctx = build_context(
        pipeline,
        task,
        run_id=run_id,
        attempt=attempt,
        raw_params=raw_params,
        settings=settings,
        sizing=sizing,
        progress=progress,
    )
    converted = pipeline.convert_params(ctx.params)
    available = dict(inputs or {})
    annotations = _annotation_loader(task.fn)

    def load(ref: OutputRefLike) -> Any:
        key = (ref.task, ref.output)
        if key not in available:
            raise NotFoundError(
                f"pipeline {pipeline.name}, task {task.name}: input {ref.task}.{ref.output} was not given; "
                f"run task {ref.task} first (or resume the run)"
            )
        return Artifact(available[key], ctx.store)

    arguments = task.bind(converted, load)
    arguments = {
        name: _load_input(value, annotations.get(name)) if isinstance(value, Artifact) else value
        for name, value in arguments.items()
    }
    if task.wants_context:
        arguments["ctx"] = ctx
    value = task.fn(**arguments)
    outputs = _store_outputs(ctx, task, value)
    return TaskResult(
        outputs=outputs,
        duration_seconds=time.perf_counter() - started,
        peak_memory_bytes=peak_memory_bytes(),
        records=ctx.records,
    )


def peak_memory_bytes() -> int:
    """This process's peak resident memory: ``VmHWM``, its own address space's high-water mark,
    where Linux gives it. ``ru_maxrss`` also counts, across an exec, the resident memory of the
    process that started this one: a task started by a 1.2 GiB process reported 1.2 GiB."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _store_outputs(ctx: StepContext, task: TaskLike, value: Any) -> dict[str, ArtifactRef]:
    if len(task.outputs) == 1:
        values = {task.outputs[0]: value}
    else:
        if not isinstance(value, Mapping):
            raise StepFailed(
                f"pipeline {ctx.pipeline}, task {task.name}: declares outputs {', '.join(task.outputs)} "
                f"but returned a {type(value).__name__}; return a dict with those keys"
            )
        missing = [name for name in task.outputs if name not in value]
        if missing:
            raise StepFailed(f"pipeline {ctx.pipeline}, task {task.name}: output {missing[0]!r} was not returned")
        values = {name: value[name] for name in task.outputs}
    try:
        return {name: write_value(ctx.store, ctx.output_key(name), item) for name, item in values.items()}
    except UnstorableValue as error:
        raise UnstorableValue(f"pipeline {ctx.pipeline}, task {task.name}: {error}") from None


def write_output_files(directory: Path, result: TaskResult) -> None:
    """Write each output as files Argo reads into output parameters: ``<name>`` holds the
    reference's JSON, ``<name>-bytes`` and ``<name>-rows`` the sizes for the UI and sizing."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, ref in result.outputs.items():
        (directory / name).write_text(json.dumps(ref.to_dict(), sort_keys=True))
        (directory / f"{name}-bytes").write_text(str(ref.bytes))
        (directory / f"{name}-rows").write_text(str(ref.rows if ref.rows is not None else 0))
    (directory / "_result.json").write_text(json.dumps(result.to_dict(), sort_keys=True))


def parse_inputs(values: list[str]) -> dict[tuple[str, str], ArtifactRef]:
    """``TASK.OUTPUT=<reference JSON>`` pairs from the command line."""
    parsed: dict[tuple[str, str], ArtifactRef] = {}
    for item in values:
        key, sep, payload = item.partition("=")
        task, dot, output = key.partition(".")
        if not sep or not dot:
            raise UserError(f"--input {item[:60]!r}: use TASK.OUTPUT=<reference JSON>")
        try:
            parsed[(task, output)] = ArtifactRef.from_dict(json.loads(payload))
        except (ValueError, TypeError, KeyError) as error:
            raise UserError(f"--input {key}: not a valid artifact reference ({error})") from None
    return parsed


def parse_params(values: list[str]) -> dict[str, str]:
    """``key=value`` pairs; the one parser for ``-p`` everywhere."""
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"-p {item!r}: use -p NAME=VALUE, e.g. -p run_date=2026-11-01")
        parsed[key.strip()] = value
    return parsed


def log_line(message: str) -> None:
    print(f"[headrace] {message}", file=sys.stderr, flush=True)
