"""The data every part of headrace exchanges: artifacts, sizing, observations, run events.

Plain frozen dataclasses (no pydantic) so the in-pod entrypoint imports them in microseconds; the
control room's FastAPI app validates the same classes at its HTTP boundary. ``to_dict`` and
``from_dict`` give the JSON form used on the wire, in Argo parameters and in run records.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    """The JSON-ready form of any contract dataclass (enums become their values)."""

    def convert(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return {k: convert(v) for k, v in dataclasses.asdict(obj).items()}


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build a contract dataclass from its JSON form, ignoring keys a newer writer added."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})


class Outcome(enum.StrEnum):
    """How one task attempt ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    OOM = "oom"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class SizingTarget(enum.StrEnum):
    """What a sizing decision sizes: a pod, a SageMaker training job or a Glue job."""

    POD = "pod"
    SAGEMAKER = "sagemaker"
    GLUE = "glue"


@dataclass(frozen=True)
class ArtifactRef:
    """Where one task output lives and how big it is; the control room sizes from these numbers."""

    uri: str
    bytes: int
    rows: int | None = None
    format: str = "file"  # parquet | json | file | dir | blob | model
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArtifactRef:
        return from_dict(cls, data)


def artifact_totals(refs: Iterable[ArtifactRef]) -> tuple[int, int]:
    """Bytes and rows over some artifacts, each stored artifact (URI) counted once: the one way
    the runner, the sizing node and the in-pod reporter size a task's inputs and outputs."""
    seen: dict[str, ArtifactRef] = {}
    for ref in refs:
        seen.setdefault(ref.uri, ref)
    return sum(max(0, r.bytes) for r in seen.values()), sum(max(0, r.rows or 0) for r in seen.values())


@dataclass(frozen=True)
class SizingRequest:
    """Ask the control room how big the next task should be, just before it starts."""

    pipeline: str
    task: str
    run_id: str
    target: SizingTarget = SizingTarget.POD
    input_bytes: int = 0
    input_rows: int = 0
    attempt: int = 1
    #: The task's declared resources (cpu, memory, instance_type, instance_count): the fallback.
    declared: dict[str, Any] = field(default_factory=dict)
    #: Deadline in seconds the predicted duration must meet (the task's timeout), if any.
    deadline_seconds: float | None = None
    #: Declared bytes of memory per input row, used before any history exists.
    bytes_per_row: float | None = None
    #: Outcome of the previous attempt of this task in this run, e.g. "oom" to go one size up.
    previous_outcome: str | None = None
    #: Instance type the previous attempt ran on (the size an OOM escalates from).
    previous_instance_type: str | None = None
    #: Instances (Glue workers) the previous attempt had, when more than one.
    previous_instance_count: int | None = None
    #: Attempts the task has after this one (its retry limit minus the retries used); None when
    #: unknown. After an OOM the policy steps up so that the last attempt gets the largest size.
    retries_left: int | None = None
    #: The run's ``run_date`` (a backfill's runs are decided the same day for many dates): the
    #: page's date axis. Empty when the caller does not know it.
    run_date: str = ""


@dataclass(frozen=True)
class SizingDecision:
    """The chosen size for one task attempt and the one-line reason a person can read."""

    target: SizingTarget
    instance_type: str
    instance_count: int = 1
    cpu: str | None = None  # pod requests/limits, Kubernetes quantities
    memory: str | None = None
    predicted_duration_seconds: float | None = None
    predicted_peak_memory_bytes: int | None = None
    predicted_cost_usd: float | None = None
    reason: str = ""
    source: str = "policy"  # policy | rules | default | declared (service down)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SizingDecision:
        decision = from_dict(cls, data)
        return dataclasses.replace(decision, target=SizingTarget(decision.target))


@dataclass(frozen=True)
class Observation:
    """What one task attempt did: the control room learns sizes from these. Idempotent on
    (run_id, task, attempt)."""

    pipeline: str
    task: str
    run_id: str
    attempt: int
    outcome: Outcome
    input_bytes: int = 0
    input_rows: int = 0
    output_bytes: int = 0
    output_rows: int = 0
    target: SizingTarget = SizingTarget.POD
    instance_type: str | None = None
    instance_count: int = 1
    cpu: str | None = None
    memory: str | None = None
    duration_seconds: float = 0.0
    peak_memory_bytes: int | None = None
    cost_usd: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


class EventKind(enum.StrEnum):
    """Every run event headrace emits; one notifier turns them into Slack messages and metrics."""

    RUN_STARTED = "run.started"
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    TASK_STARTED = "task.started"
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_RETRYING = "task.retrying"
    SIZING_DECIDED = "sizing.decided"


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened to a run or a task, from the runner, the entrypoint or the watcher."""

    kind: EventKind
    pipeline: str
    run_id: str
    task: str | None = None
    attempt: int | None = None
    at: float = 0.0  # unix seconds
    duration_seconds: float | None = None
    reason: str = ""  # OOMKilled, exit code 1, timeout, a SageMaker/Glue failure reason
    log_tail: list[str] = field(default_factory=list)
    sizing: dict[str, Any] | None = None  # SizingDecision.to_dict() where one was made
    output_bytes: int | None = None
    output_rows: int | None = None
    url: str | None = None  # Argo UI link where the run runs on Argo
    source: str = "local"  # local | entrypoint | watcher | exit-handler
    #: Made where the event is made, sent with every retry of it: the control room stores an
    #: event once per id (a retry whose answer was lost is not a second event).
    event_id: str | None = field(default_factory=lambda: os.urandom(16).hex())

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEvent:
        event = from_dict(cls, data)
        return dataclasses.replace(event, kind=EventKind(event.kind))


#: Who hears every run event: the notifier (Slack, Datadog, the console), in-process.
Notifier = Callable[[RunEvent], None]


class ControlRoom(Protocol):
    """What runners and the entrypoint need of the control room, over HTTP or in-process."""

    def size(self, request: SizingRequest) -> SizingDecision: ...

    def observe(self, observation: Observation) -> None: ...

    def emit(self, event: RunEvent) -> None: ...
