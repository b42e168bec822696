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
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pipelines.triggers import Trigger, trigger_problems
from steps.core.contract import SizingTarget
from steps.core.errors import NotFoundError, PipelineDefinitionError, UserError
from steps.core.naming import RESERVED_PREFIX, SIZING_NODE_PREFIX
from steps.core.quantities import QuantityError, cpu_cores, memory_bytes, parse_duration

K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
K8S_NAME_RULE = "lowercase letters, digits and '-', starting and ending with a letter or digit"
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
#: Kubernetes: a label key's name part is at most 63 characters, its DNS-subdomain prefix 253.
MAX_LABEL_NAME, MAX_LABEL_PREFIX = 63, 253
#: Pod labels carry task names (``headrace.dev/task``), and label values are at most 63 characters.
MAX_TASK_NAME = 63
#: Argo appends an 11-character suffix to CronWorkflow names; 52 keeps the result a valid name.
MAX_PIPELINE_NAME = 52
RESERVED_STEP_KEYWORDS = frozenset(
    {"name", "after", "resources", "retry", "timeout", "sizing", "bytes_per_row", "description"}
)
CRON_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
RETRY_ON = {"failure": "OnFailure", "error": "OnError", "transient": "OnTransientError", "always": "Always"}
DEFAULT_IMAGE = "ghcr.io/headrace/headrace:0.1.0"
#: The Argo compiler puts a sizing node named ``size-<task>`` before each ``sizing="auto"`` task
#: and labels its pod ``headrace.dev/task: size-<task>``, so a sized task's name is shorter.
MAX_SIZED_TASK_NAME = MAX_TASK_NAME - len(SIZING_NODE_PREFIX)
#: Output parameters the compiler derives from each output ``<name>``.
OUTPUT_SUFFIXES = ("-bytes", "-rows")
#: Input parameters the compiler adds to a sized task.
SIZING_INPUTS = ("sizing", "pod-spec-patch")
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

    @property
    def function_path(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

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
        found += _name_problems(where, "name", self.name, MAX_PIPELINE_NAME)
        if not self.tasks:
            found.append(f"{where}: has no tasks; call at least one step inside `with Pipeline(...)`")
        for name in dict.fromkeys(self._duplicates):
            found.append(f"{where}, task {name}: defined twice; give the second one name='{name}-2' or similar")
        found += _schedule_problems(where, self.schedule, self.timezone)
        if self.namespace is not None:
            found += _name_problems(where, "namespace", self.namespace, 63)
        if self.service_account is not None and not _is_dns_subdomain(self.service_account):
            found.append(
                f"{where}: service_account {self.service_account!r} is not a valid Kubernetes name; use {K8S_NAME_RULE}, '.' between parts, at most 253 characters"
            )
        found += trigger_problems(self.name, self.triggers, self.params)
        for key, value in self.labels.items():
            if not _is_label_key(key) or not LABEL_VALUE.match(value) or len(value) > 63:
                found.append(
                    f"{where}: label {key}={value!r} is not a valid Kubernetes label; keys and values use letters, digits, '-', '_', '.' (values and key names at most 63, key prefixes 253)"
                )
        for pname in self.params:
            if not PARAM_NAME.match(pname):
                found.append(f"{where}: parameter {pname!r} is not a valid name; use letters, digits and '_'")
            elif pname in SIZING_INPUTS:
                found.append(f"{where}: parameter {pname!r} is reserved for the control room's decision; rename it")
        for task in self.tasks.values():
            found += _task_problems(self, task)
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


# ----------------------------------------------------------------------------- rules


def _is_dns_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 253 and all(K8S_NAME.match(part) for part in value.split("."))


def _is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not _is_dns_subdomain(prefix):
        return False
    return bool(LABEL_KEY.match(key)) and len(name) <= MAX_LABEL_NAME and len(prefix) <= MAX_LABEL_PREFIX


def _name_problems(where: str, field_name: str, value: str, limit: int) -> list[str]:
    if not isinstance(value, str) or not K8S_NAME.match(value):
        return [f"{where}: {field_name} {value!r} is not a valid Kubernetes name; use {K8S_NAME_RULE}"]
    if len(value) > limit:
        return [f"{where}: {field_name} {value!r} is {len(value)} characters; Kubernetes allows at most {limit}"]
    return []


def _schedule_problems(where: str, schedule: Schedule | None, timezone: str) -> list[str]:
    found = _timezone_problems(where, "timezone", timezone)
    if schedule is None:
        return found
    if not schedule.crons:
        found.append(f"{where}: schedule.cron is empty; give a cron expression such as '0 3 * * *'")
    for expression in schedule.crons:
        problem = cron_problem(expression)
        if problem:
            found.append(f"{where}: schedule.cron {expression!r} {problem}")
    if schedule.concurrency not in CONCURRENCY_POLICIES:
        found.append(
            f"{where}: schedule.concurrency {schedule.concurrency!r} is not a policy; use {', '.join(CONCURRENCY_POLICIES)}"
        )
    if schedule.starting_deadline_seconds is not None and schedule.starting_deadline_seconds < 0:
        found.append(f"{where}: schedule.starting_deadline_seconds must be >= 0")
    for name in ("successful_history", "failed_history"):
        if getattr(schedule, name) < 0:
            found.append(f"{where}: schedule.{name} must be >= 0")
    if schedule.timezone != timezone:
        found += _timezone_problems(where, "schedule.timezone", schedule.timezone)
    return found


def cron_problem(expression: str) -> str | None:
    """Why ``expression`` is not a cron Argo v4 accepts, or None when it is fine."""
    text = expression.strip()
    if text in CRON_DESCRIPTORS:
        return None
    if text.startswith("@every "):
        try:
            parse_duration(text.removeprefix("@every ").strip())
        except QuantityError:
            return "has an invalid @every interval; use e.g. '@every 1h30m'"
        return None
    if text.startswith("@"):
        return f"is not a descriptor Argo knows; use one of {', '.join(sorted(CRON_DESCRIPTORS))} or '@every 1h'"
    fields = text.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; Argo takes 5 (minute hour day-of-month month day-of-week) or @daily-style descriptors"
    for position, (value, spec) in enumerate(zip(fields, _CRON_FIELDS, strict=True)):
        problem = _cron_field_problem(value, *spec, allow_question=position in (2, 4))
        if problem:
            return problem
    from croniter import croniter  # small, pure; only needed to validate

    if not croniter.is_valid(text):
        return "is not a valid cron expression; check each field's range (e.g. '0 3 * * *')"
    return None


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (field name, lowest, highest, names) as Argo's cron parser (robfig/cron) reads them.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
_CRON_ITEM = re.compile(r"^(?:(\*|\?)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?$")


def _cron_field_problem(
    value: str, field_name: str, low: int, high: int, names: tuple[str, ...], *, allow_question: bool
) -> str | None:
    """Why one cron field is not what Argo's parser accepts (no L, W, # or H; ranges in bounds)."""
    for item in value.split(","):
        match = _CRON_ITEM.match(item)
        if not match or (match.group(1) == "?" and not allow_question):
            return f"has {field_name} {value!r}; use numbers, ranges (1-5), steps (*/15) or lists (1,3) (Argo supports no L, W, # or H)"
        for token in (match.group(2), match.group(3)):
            if token is None:
                continue
            number = names.index(token.upper()) + (low if names is _MONTHS else 0) if token.upper() in names else None
            if number is None:
                if not token.isdigit():
                    return f"has {field_name} {value!r}; {token!r} is not a number{' or name' if names else ''} (Argo supports no L, W, # or H)"
                number = int(token)
            if not low <= number <= high:
                return f"has {field_name} {value!r}; {token} is outside {low}-{high}"
        if match.group(2) and match.group(3):
            first, last = (
                names.index(t.upper()) if t.upper() in names else int(t) for t in (match.group(2), match.group(3))
            )
            if first > last:
                return f"has {field_name} {value!r}; a range must go from low to high"
        if match.group(4) is not None and int(match.group(4)) == 0:
            return f"has {field_name} {value!r}; a step of 0 never fires"
    return None


def _timezone_problems(where: str, field_name: str, timezone: str) -> list[str]:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [f"{where}: {field_name} {timezone!r} is not an IANA time zone; use e.g. 'UTC' or 'Asia/Tokyo'"]
    return []


def _missing_arguments(task: Task) -> list[str]:
    """Parameters of the step function without a default that the task's call leaves out
    (``ctx`` is passed by headrace): they would fail the task when it runs."""
    try:
        parameters = inspect.signature(task.fn).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature: nothing to check
        return []
    needed = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return [
        p.name
        for p in parameters
        if p.kind in needed
        and p.default is inspect.Parameter.empty
        and p.name != "ctx"
        and p.name not in task.arguments
    ]


def _task_problems(pipeline: Pipeline, task: Task) -> list[str]:
    where = f"pipeline {pipeline.name}, task {task.name}"
    auto_sized = task.sizing == "auto"
    limit = MAX_SIZED_TASK_NAME if auto_sized else MAX_TASK_NAME
    found = _name_problems(where, "name", task.name, limit)
    if found and auto_sized and isinstance(task.name, str) and MAX_SIZED_TASK_NAME < len(task.name) <= MAX_TASK_NAME:
        found = [f"{found[0]} (sizing='auto': its sizing node's pod label is size-<name>)"]
    if not found and not task.name[0].isalpha():
        found.append(
            f"{where}: name {task.name!r} starts with a digit, which Argo refuses for a task that waits for others (every sized task does); start it with a letter"
        )
    if isinstance(task.name, str) and task.name.startswith(RESERVED_PREFIX):
        found.append(f"{where}: name starts with {RESERVED_PREFIX!r}, which headrace reserves; rename the task")
    if isinstance(task.name, str) and task.name.startswith(SIZING_NODE_PREFIX):
        sized = pipeline.tasks.get(task.name.removeprefix(SIZING_NODE_PREFIX))
        if sized is not None and sized.sizing == "auto":
            found.append(
                f"{where}: name clashes with the sizing node of task {sized.name} (sizing='auto'); rename the task"
            )
    for output in task.outputs:
        if not isinstance(output, str) or not K8S_NAME.match(output):
            found.append(f"{where}: output {output!r} is not a valid name; use {K8S_NAME_RULE}")
        elif output.endswith(OUTPUT_SUFFIXES) and output.rsplit("-", 1)[0] in task.outputs:
            found.append(
                f"{where}: output {output!r} clashes with the size parameter of output {output.rsplit('-', 1)[0]!r}; rename it"
            )
    if len(set(task.outputs)) != len(task.outputs):
        found.append(f"{where}: outputs name the same output twice; give each output its own name")
    for missing in _missing_arguments(task):
        found.append(f"{where}: the step needs argument {missing!r}, which the call does not pass; pass {missing}=...")
    parameter_names: dict[str, OutputRef] = {}
    for ref in task.input_refs():
        parameter = f"{ref.task}-{ref.output}"
        other = parameter_names.setdefault(parameter, ref)
        if other != ref or (task.sizing == "auto" and parameter in SIZING_INPUTS):
            found.append(
                f"{where}: input {ref.task}.{ref.output} maps to the Argo parameter {parameter!r} that another input uses; rename an output"
            )
    for ref in task.input_refs():
        if ref.task not in pipeline.tasks:
            found.append(f"{where}: depends on unknown task {ref.task!r}; define it before use or fix the name")
        elif not pipeline.tasks[ref.task].outputs:
            found.append(
                f"{where}: reads an output of task {ref.task}, which has none; wait for it with after=[{ref.task!r}] instead"
            )
        elif ref.output == "":
            outputs = pipeline.tasks[ref.task].outputs
            found.append(
                f"{where}: task {ref.task} has outputs {', '.join(outputs)}; pass one of them, e.g. {ref.task}[{outputs[0]!r}]"
            )
        elif ref.output not in pipeline.tasks[ref.task].outputs:
            outputs = pipeline.tasks[ref.task].outputs
            found.append(
                f"{where}: reads output {ref.output!r} of task {ref.task}, which has only {', '.join(outputs)}"
            )
    for name in task.after:
        if name not in pipeline.tasks:
            found.append(f"{where}: after= names unknown task {name!r}; tasks are {', '.join(pipeline.tasks)}")
        elif name == task.name:
            found.append(f"{where}: after= names the task itself; remove it")
    for pname in task.param_refs():
        if pname not in pipeline.params:
            found.append(
                f"{where}: uses unknown parameter {pname!r}; declare it with pipeline.param({pname!r}, default)"
            )
    found += _resource_problems(where, task.resources)
    if task.retry.limit < 0:
        found.append(f"{where}: retry.limit is {task.retry.limit}; it must be 0 or more")
    if task.retry.on not in RETRY_ON:
        found.append(f"{where}: retry.on {task.retry.on!r} is not one of {', '.join(RETRY_ON)}")
    if task.retry.backoff.factor < 1:
        found.append(f"{where}: retry.backoff.factor must be >= 1")
    for field_name, value in (
        ("retry.backoff.duration", task.retry.backoff.duration),
        ("retry.backoff.max_duration", task.retry.backoff.max_duration),
        ("timeout", task.timeout),
    ):
        if value is not None:
            try:
                parse_duration(value)
            except QuantityError as error:
                found.append(f"{where}: {field_name} {error}")
    if task.sizing not in ("static", "auto"):
        found.append(f"{where}: sizing {task.sizing!r} is not 'static' or 'auto'")
    if task.bytes_per_row is not None and task.bytes_per_row <= 0:
        found.append(f"{where}: bytes_per_row must be positive")
    return found


def _resource_problems(where: str, resources: Resources) -> list[str]:
    found: list[str] = []
    for field_name in ("cpu", "cpu_limit"):
        value = getattr(resources, field_name)
        if value is not None:
            try:
                if cpu_cores(value) <= 0:
                    found.append(f"{where}: resources.{field_name} must be more than 0")
            except QuantityError as error:
                found.append(f"{where}: resources.{field_name} {error}")
    for field_name in ("memory", "memory_limit"):
        value = getattr(resources, field_name)
        if value is not None:
            try:
                if memory_bytes(value) <= 0:
                    found.append(f"{where}: resources.{field_name} must be more than 0")
            except QuantityError as error:
                found.append(f"{where}: resources.{field_name} {error}")
    if resources.gpu < 0:
        found.append(f"{where}: resources.gpu must be 0 or more")
    if resources.instance_count < 1:
        found.append(f"{where}: resources.instance_count must be 1 or more")
    if resources.memory and resources.memory_limit:
        try:
            if memory_bytes(resources.memory_limit) < memory_bytes(resources.memory):
                found.append(f"{where}: resources.memory_limit is below resources.memory; raise the limit")
        except QuantityError:
            pass
    if resources.cpu and resources.cpu_limit:
        try:
            if cpu_cores(resources.cpu_limit) < cpu_cores(resources.cpu):
                found.append(f"{where}: resources.cpu_limit is below resources.cpu; raise the limit")
        except QuantityError:
            pass
    return found
