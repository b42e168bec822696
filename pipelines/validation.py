"""The rules a pipeline must keep: names Kubernetes and Argo accept, schedules, resources, retries,
task arguments. Each broken rule is one line naming pipeline, task and field, with the fix.

:meth:`pipelines.graph.Pipeline.problems` walks the model and calls these; the model's classes are
imported here for annotations only, so the rules never import the model at run time.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING

from pipelines.cron import cron_problem
from steps.core.naming import RESERVED_PREFIX, SIZING_NODE_PREFIX
from steps.core.quantities import QuantityError, cpu_cores, memory_bytes, parse_duration

if TYPE_CHECKING:
    from pipelines.graph import OutputRef, Pipeline, Resources, Schedule, Task

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
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
RETRY_ON = {"failure": "OnFailure", "error": "OnError", "transient": "OnTransientError", "always": "Always"}
#: The Argo compiler puts a sizing node named ``size-<task>`` before each ``sizing="auto"`` task
#: and labels its pod ``headrace.dev/task: size-<task>``, so a sized task's name is shorter.
MAX_SIZED_TASK_NAME = MAX_TASK_NAME - len(SIZING_NODE_PREFIX)
#: Output parameters the compiler derives from each output ``<name>``.
OUTPUT_SUFFIXES = ("-bytes", "-rows")
#: Input parameters the compiler adds to a sized task.
SIZING_INPUTS = ("sizing", "pod-spec-patch")


def is_dns_subdomain(value: str) -> bool:
    return isinstance(value, str) and len(value) <= 253 and all(K8S_NAME.match(part) for part in value.split("."))


def is_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return bool(LABEL_KEY.match(key)) and len(name) <= MAX_LABEL_NAME and len(prefix) <= MAX_LABEL_PREFIX


def name_problems(where: str, field_name: str, value: str, limit: int) -> list[str]:
    if not isinstance(value, str) or not K8S_NAME.match(value):
        return [f"{where}: {field_name} {value!r} is not a valid Kubernetes name; use {K8S_NAME_RULE}"]
    if len(value) > limit:
        return [f"{where}: {field_name} {value!r} is {len(value)} characters; Kubernetes allows at most {limit}"]
    return []


def schedule_problems(where: str, schedule: Schedule | None, timezone: str) -> list[str]:
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


def task_problems(pipeline: Pipeline, task: Task) -> list[str]:
    where = f"pipeline {pipeline.name}, task {task.name}"
    auto_sized = task.sizing == "auto"
    limit = MAX_SIZED_TASK_NAME if auto_sized else MAX_TASK_NAME
    found = name_problems(where, "name", task.name, limit)
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
