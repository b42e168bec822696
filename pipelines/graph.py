"""The pipeline model: pure data, validated, no I/O.

A pipeline is written in Python::

    with Pipeline("recipe-stream", schedule=Schedule("0 3 * * *", timezone="Asia/Tokyo")) as p:
        raw = extract(day=p.run_date)
        model = train(data=raw)
        scored = batch_infer(model=model, data=raw)

Calling a :func:`step` inside ``with Pipeline(...)`` adds a :class:`Task` and returns a
:class:`TaskHandle`; passing a handle (or ``handle["output"]``) to another step is what makes a
dependency. Nothing runs here: the compilers (Argo) and the local runner read this model.

Mistakes are collected, not raised one by one: :meth:`Pipeline.problems` lists every broken rule
as one line naming pipeline, task and field; :meth:`Pipeline.check` raises them together.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pipelines.triggers import Trigger, trigger_problems
from pipelines.validation import (
    K8S_NAME_RULE,
    LABEL_VALUE,
    MAX_PIPELINE_NAME,
    PARAM_NAME,
    RESERVED_STEP_KEYWORDS,
    SIZING_INPUTS,
    is_dns_subdomain,
    is_label_key,
    name_problems,
    schedule_problems,
    task_problems,
)
from steps.core.contract import SizingTarget
from steps.core.errors import NotFoundError, PipelineDefinitionError, UserError
from steps.core.quantities import parse_duration

DEFAULT_IMAGE = "ghcr.io/headrace/headrace:0.1.0"
RUN_DATE = "run_date"

_current: contextvars.ContextVar[Pipeline | None] = contextvars.ContextVar("headrace_pipeline", default=None)

F = TypeVar("F", bound=Callable[..., Any])


# ----------------------------------------------------------------------------- building blocks


@dataclass(frozen=True)
class Resources:
    """What a task needs: pod cpu/memory/gpu, or the instance for a hand-off step.

    ``cpu`` and ``memory`` are Kubernetes quantities (``"500m"``, ``"4Gi"``). Memory is requested
    and limited at the same value unless ``memory_limit`` says otherwise (predictable OOMs beat
    noisy neighbours); CPU gets no limit unless ``cpu_limit`` is set (throttling hurts more).
    """

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0
    cpu_limit: str | None = None
    memory_limit: str | None = None
    instance_type: str | None = None
    instance_count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, 0) or k == "instance_count"}


@dataclass(frozen=True)
class Backoff:
    """Wait ``duration`` before the first retry, multiplied by ``factor`` each time, capped."""

    duration: str | int | float = "10s"
    factor: float = 2.0
    max_duration: str | int | float | None = "10m"


@dataclass(frozen=True)
class Retry:
    """How often a failed task is tried again, after which failures and how long to wait.

    ``on``: ``"failure"`` (the step failed, including OOM kills), ``"error"`` (Argo/Kubernetes
    errors), ``"transient"`` (errors Argo deems transient) or ``"always"``. A bad-input exit
    (code 2) is never retried: no retry fixes a wrong argument.
    """

    limit: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    on: str = "failure"


@dataclass(frozen=True)
class Schedule:
    """When a pipeline runs: Argo v4 CronWorkflow settings.

    ``cron`` is one expression or a list of them (Argo v4 ``schedules``), five fields or a
    descriptor such as ``@daily``, evaluated in ``timezone``.
    """

    cron: str | Sequence[str]
    timezone: str = "UTC"
    concurrency: str = "Forbid"
    starting_deadline_seconds: int | None = None
    successful_history: int = 3
    failed_history: int = 1
    suspend: bool = False

    @property
    def crons(self) -> tuple[str, ...]:
        return (self.cron,) if isinstance(self.cron, str) else tuple(self.cron)


@dataclass(frozen=True)
class Notify:
    """Where run events go: a Slack channel, failures only or not, who to mention on failure."""

    slack_channel: str | None = None
    failures_only: bool = False
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    """A run-time parameter; values arrive as strings and are converted to the default's type."""

    name: str
    default: str | int | float | bool | None = None
    description: str = ""

    def convert(self, raw: str) -> Any:
        """The raw string value converted to the type of the default."""
        default = self.default
        if isinstance(default, bool):
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise UserError(f"parameter {self.name}: {raw!r} is not a boolean; use true or false")
            return lowered in ("true", "1", "yes")
        if isinstance(default, int | float):
            try:
                return type(default)(raw)
            except ValueError as error:
                raise UserError(
                    f"parameter {self.name}: {raw!r} is not {type(default).__name__}; pass a number"
                ) from error
        return raw


@dataclass(frozen=True)
class ParamRef:
    """A reference to a pipeline parameter, resolved when the task runs."""

    name: str

    def __str__(self) -> str:
        return f"{{{{inputs.parameters.{self.name}}}}}"


@dataclass(frozen=True)
class OutputRef:
    """A reference to one named output of another task."""

    task: str
    output: str


@dataclass(frozen=True)
class TaskHandle:
    """What calling a step inside a pipeline returns; pass it (or ``handle["name"]``) onward."""

    name: str
    outputs: tuple[str, ...]

    def __getitem__(self, output: str) -> OutputRef:
        return OutputRef(self.name, output)

    def output(self, name: str) -> OutputRef:
        return OutputRef(self.name, name)


# ----------------------------------------------------------------------------- tasks and steps


def _default_output(handle: TaskHandle) -> OutputRef:
    # With several outputs the reference stays ambiguous; validation reports it by name.
    return OutputRef(handle.name, handle.outputs[0] if len(handle.outputs) == 1 else "")


def _normalise(value: Any) -> Any:
    """Replace handles by output references, recursively, so the model holds only plain refs."""
    if isinstance(value, TaskHandle):
        return _default_output(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_normalise(v) for v in value)
    return value


def iter_refs(value: Any) -> Iterator[OutputRef | ParamRef]:
    """Every output and parameter reference inside an argument, depth first."""
    if isinstance(value, OutputRef | ParamRef):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_refs(item)


def _substitute(value: Any, resolve: Callable[[OutputRef | ParamRef], Any]) -> Any:
    if isinstance(value, OutputRef | ParamRef):
        return resolve(value)
    if isinstance(value, dict):
        return {k: _substitute(v, resolve) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_substitute(v, resolve) for v in value)
    return value


@dataclass(eq=False)
class Task:
    """One node of the pipeline: a step function, its arguments and how it runs."""

    name: str
    fn: Callable[..., Any]
    arguments: dict[str, Any]
    outputs: tuple[str, ...] = ("result",)
    resources: Resources = field(default_factory=Resources)
    retry: Retry = field(default_factory=Retry)
    timeout: str | int | float | dt.timedelta | None = None
    sizing: str = "static"
    after: tuple[str, ...] = ()
    target: SizingTarget = SizingTarget.POD
    bytes_per_row: float | None = None
    description: str = ""

    @property
    def upstream(self) -> tuple[str, ...]:
        """Tasks this one waits for: those whose outputs it reads, then explicit ``after``."""
        # dicts as ordered sets: a join reading k outputs costs O(k), not O(k^2)
        names = dict.fromkeys(ref.task for ref in self.input_refs())
        names.update(dict.fromkeys(self.after))
        return tuple(names)

    def input_refs(self) -> list[OutputRef]:
        refs = (ref for value in self.arguments.values() for ref in iter_refs(value))
        return list(dict.fromkeys(ref for ref in refs if isinstance(ref, OutputRef)))

    def param_refs(self) -> list[str]:
        refs = (ref for value in self.arguments.values() for ref in iter_refs(value))
        return list(dict.fromkeys(ref.name for ref in refs if isinstance(ref, ParamRef)))

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else parse_duration(self.timeout)

    def bind(
        self,
        params: Mapping[str, Any],
        load: Callable[[OutputRef], Any],
    ) -> dict[str, Any]:
        """The keyword arguments for the step function: parameter values and loaded inputs.

        ``params`` holds converted parameter values; ``load`` turns an output reference into the
        value the step receives (the runner decides how: an Artifact, a DataFrame...).
        """

        def resolve(ref: OutputRef | ParamRef) -> Any:
            if isinstance(ref, ParamRef):
                return params[ref.name]
            return load(ref)

        return {name: _substitute(value, resolve) for name, value in self.arguments.items()}

    @property
    def wants_context(self) -> bool:
        return "ctx" in inspect.signature(self.fn).parameters


class Step:
    """A function made usable as a pipeline task. Create with :func:`step`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        outputs: Sequence[str] = ("result",),
        resources: Resources | None = None,
        retry: Retry | None = None,
        timeout: str | int | float | dt.timedelta | None = None,
        sizing: Literal["static", "auto"] = "static",
        bytes_per_row: float | None = None,
        target: SizingTarget | str | None = None,
    ) -> None:
        clashes = RESERVED_STEP_KEYWORDS & set(inspect.signature(fn).parameters)
        if clashes:
            raise PipelineDefinitionError(
                f"step {fn.__qualname__}: parameter {sorted(clashes)[0]!r} is reserved for task options; rename it"
            )
        self.fn = fn
        self.name = name or fn.__name__.replace("_", "-").lower()
        self.outputs = tuple(outputs)
        self.resources = resources or Resources()
        self.retry = retry or Retry()
        self.timeout = timeout
        self.sizing = sizing
        self.bytes_per_row = bytes_per_row
        declared_target = target or getattr(fn, "__headrace_target__", SizingTarget.POD)
        self.target = SizingTarget(str(declared_target))
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", self.name)

    def __repr__(self) -> str:
        return f"Step({self.name!r})"

    def __call__(
        self,
        *args: Any,
        name: str | None = None,
        after: Sequence[TaskHandle | str] = (),
        resources: Resources | None = None,
        retry: Retry | None = None,
        timeout: str | int | float | dt.timedelta | None = None,
        sizing: Literal["static", "auto"] | None = None,
        bytes_per_row: float | None = None,
        description: str = "",
        **kwargs: Any,
    ) -> TaskHandle:
        pipeline = _current.get()
        if pipeline is None:
            raise PipelineDefinitionError(
                f"step {self.name}: called outside a pipeline; call it inside `with Pipeline(...):`"
            )
        signature = inspect.signature(self.fn)
        parameters = [p for p in signature.parameters.values() if p.name != "ctx"]
        try:
            bound = inspect.Signature(parameters).bind_partial(*args, **kwargs)
        except TypeError as error:
            raise PipelineDefinitionError(f"pipeline {pipeline.name}, task {name or self.name}: {error}") from None
        task = Task(
            name=name or self.name,
            fn=self.fn,
            arguments={k: _normalise(v) for k, v in bound.arguments.items()},
            outputs=self.outputs,
            resources=resources or self.resources,
            retry=retry or self.retry,
            timeout=timeout if timeout is not None else self.timeout,
            sizing=sizing or self.sizing,
            after=tuple(a.name if isinstance(a, TaskHandle) else a for a in after),
            target=self.target,
            bytes_per_row=bytes_per_row if bytes_per_row is not None else self.bytes_per_row,
            description=description or (self.fn.__doc__ or "").strip().split("\n")[0],
        )
        pipeline.add(task)
        return TaskHandle(task.name, task.outputs)


def step(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    outputs: Sequence[str] = ("result",),
    resources: Resources | None = None,
    retry: Retry | None = None,
    timeout: str | int | float | dt.timedelta | None = None,
    sizing: Literal["static", "auto"] = "static",
    bytes_per_row: float | None = None,
    target: SizingTarget | str | None = None,
) -> Any:
    """Make a function a pipeline step; use bare (``@step``) or with options (``@step(...)``).

    The function may take ``ctx`` (a :class:`steps.runtime.context.StepContext`) and any other arguments;
    ``outputs`` names what it returns (return a dict keyed by those names when there are several).
    Backend functions (``steps.backends.sagemaker.train``...) are steps too: ``step(sagemaker.train)``.
    """
    options = dict(
        name=name,
        outputs=outputs,
        resources=resources,
        retry=retry,
        timeout=timeout,
        sizing=sizing,
        bytes_per_row=bytes_per_row,
        target=target,
    )
    if fn is None:
        return lambda f: Step(f, **options)  # type: ignore[arg-type]
    return Step(fn, **options)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the pipeline


class Pipeline:
    """A named DAG of tasks with its schedule, parameters and cluster settings."""

    def __init__(
        self,
        name: str,
        *,
        schedule: Schedule | None = None,
        params: Mapping[str, Any] | Sequence[Param] | None = None,
        image: str | None = None,
        namespace: str | None = None,
        service_account: str | None = None,
        labels: Mapping[str, str] | None = None,
        notify: Notify | None = None,
        timezone: str | None = None,
        description: str = "",
        triggers: Sequence[Trigger] = (),
    ) -> None:
        self.name = name
        self.schedule = schedule
        #: What starts a run besides the schedule: queue messages, other pipelines finishing.
        self.triggers: tuple[Trigger, ...] = tuple(triggers)
        self.image = image
        self.namespace = namespace
        self.service_account = service_account
        self.labels = dict(labels or {})
        self.notify = notify or Notify()
        self.description = description
        self.timezone = timezone or (schedule.timezone if schedule else "UTC")
        self.tasks: dict[str, Task] = {}
        self.params: dict[str, Param] = {RUN_DATE: Param(RUN_DATE, "", "The day this run is for (YYYY-MM-DD)")}
        self._duplicates: list[str] = []
        self._token: contextvars.Token[Pipeline | None] | None = None
        items = params.items() if isinstance(params, Mapping) else ((p.name, p) for p in params or ())
        for key, value in items:
            self.params[key] = value if isinstance(value, Param) else Param(key, value)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, tasks={list(self.tasks)})"

    def __enter__(self) -> Pipeline:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    # -- building

    def add(self, task: Task) -> None:
        if task.name in self.tasks:
            self._duplicates.append(task.name)
            return
        self.tasks[task.name] = task

    def param(self, name: str, default: Any = None, description: str = "") -> ParamRef:
        """Declare (or refer to) a run-time parameter."""
        if name not in self.params:
            self.params[name] = Param(name, default, description)
        return ParamRef(name)

    @property
    def run_date(self) -> ParamRef:
        """The built-in ``run_date`` parameter: the scheduled day, or today when run by hand."""
        return ParamRef(RUN_DATE)

    def task(self, name: str) -> Task:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotFoundError(
                f"pipeline {self.name}: no task {name!r}; tasks are {', '.join(self.tasks) or 'none'}"
            ) from None

    # -- reading

    def downstream(self, name: str) -> list[str]:
        return [t.name for t in self.tasks.values() if name in t.upstream]

    def topological_order(self) -> list[str]:
        """Task names, each after everything it waits for; ties keep definition order."""
        self.check()
        return self._order()

    def _order(self) -> list[str]:
        """Layer by layer (every task whose upstream is all placed), each layer in definition order;
        tasks on a cycle are left out. Kahn's algorithm: O(tasks + edges)."""
        rank = {name: index for index, name in enumerate(self.tasks)}
        unmet: dict[str, int] = {}
        dependents: dict[str, list[str]] = {name: [] for name in self.tasks}
        for name, task in self.tasks.items():
            ups = [u for u in task.upstream if u in rank]
            unmet[name] = len(ups)
            for up in ups:
                dependents[up].append(name)
        layer = [name for name in self.tasks if unmet[name] == 0]
        order: list[str] = []
        while layer:
            order += layer
            following: list[str] = []
            for name in layer:
                for child in dependents[name]:
                    unmet[child] -= 1
                    if unmet[child] == 0:
                        following.append(child)
            layer = sorted(following, key=rank.__getitem__)
        return order

    def resolve_params(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Raw string parameter values for a run: defaults, then ``overrides``; unknown names fail."""
        values = {name: "" if p.default is None else str(p.default) for name, p in self.params.items()}
        for key, value in (overrides or {}).items():
            if key not in self.params:
                raise UserError(
                    f"pipeline {self.name}: unknown parameter {key!r}; parameters are {', '.join(sorted(self.params))}"
                )
            values[key] = value
        return values

    def convert_params(self, raw: Mapping[str, str]) -> dict[str, Any]:
        return {name: self.params[name].convert(value) if name in self.params else value for name, value in raw.items()}

    # -- validation

    def problems(self) -> list[str]:
        """Every rule this pipeline breaks, one line each, naming pipeline, task and field."""
        found: list[str] = []
        where = f"pipeline {self.name}"
        found += name_problems(where, "name", self.name, MAX_PIPELINE_NAME)
        if not self.tasks:
            found.append(f"{where}: has no tasks; call at least one step inside `with Pipeline(...)`")
        for name in dict.fromkeys(self._duplicates):
            found.append(f"{where}, task {name}: defined twice; give the second one name='{name}-2' or similar")
        found += schedule_problems(where, self.schedule, self.timezone)
        if self.namespace is not None:
            found += name_problems(where, "namespace", self.namespace, 63)
        if self.service_account is not None and not is_dns_subdomain(self.service_account):
            found.append(
                f"{where}: service_account {self.service_account!r} is not a valid Kubernetes name; use {K8S_NAME_RULE}, '.' between parts, at most 253 characters"
            )
        found += trigger_problems(self.name, self.triggers, self.params)
        for key, value in self.labels.items():
            if not is_label_key(key) or not LABEL_VALUE.match(value) or len(value) > 63:
                found.append(
                    f"{where}: label {key}={value!r} is not a valid Kubernetes label; keys and values use letters, digits, '-', '_', '.' (values and key names at most 63, key prefixes 253)"
                )
        for pname in self.params:
            if not PARAM_NAME.match(pname):
                found.append(f"{where}: parameter {pname!r} is not a valid name; use letters, digits and '_'")
            elif pname in SIZING_INPUTS:
                found.append(f"{where}: parameter {pname!r} is reserved for the control room's decision; rename it")
        for task in self.tasks.values():
            found += task_problems(self, task)
        cycle = self._find_cycle()
        if cycle:
            found.append(f"{where}: tasks form a cycle {' -> '.join(cycle)}; remove one of these dependencies")
        return found

    def check(self) -> Pipeline:
        """Raise :class:`PipelineInvalid` with every problem, or return the pipeline unchanged."""
        found = self.problems()
        if found:
            raise PipelineInvalid(found)
        return self

    def _find_cycle(self) -> list[str] | None:
        """The first cycle a depth-first walk meets, else None. Iterative, with the path kept as a
        list and a set: a 10,000-task chain neither recurses 10,000 deep nor scans the path."""
        done: set[str] = set()
        for root in self.tasks:
            if root in done:
                continue
            path: list[str] = [root]
            on_path: set[str] = {root}
            pending: list[Iterator[str]] = [iter(self.tasks[root].upstream)]
            while pending:
                upstream = next(pending[-1], None)
                if upstream is None:
                    pending.pop()
                    finished = path.pop()
                    on_path.discard(finished)
                    done.add(finished)
                elif upstream in on_path:
                    cycle = [*path[path.index(upstream) :], upstream]
                    return list(reversed(cycle))
                elif upstream not in done and upstream in self.tasks:
                    path.append(upstream)
                    on_path.add(upstream)
                    pending.append(iter(self.tasks[upstream].upstream))
        return None


class PipelineInvalid(PipelineDefinitionError):
    """A pipeline breaks one or more rules; ``problems`` holds one line per broken rule."""

    def __init__(self, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(problems[0] + more)
        self.problems = problems
