"""The instance catalog and the sizing rules: what may be chosen, what it costs, what a team decided.

Both are YAML files a person edits (``catalog.yaml`` and ``rules.yaml`` next to this module are
the shipped defaults; ``HEADRACE_CONTROL_ROOM_CATALOG`` / ``..._RULES`` point at a team's own).
Loading reads and validates the files into plain dataclasses; the policy in
:mod:`control_room.sizing` only ever sees those, so it stays free of I/O.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from control_room.catalog_files import CatalogFile, RulesFile, validated
from steps.core.contract import SizingTarget
from steps.core.errors import ConfigError
from steps.core.quantities import QuantityError, format_cpu, format_memory, memory_bytes

GIB = 2**30
HERE = Path(__file__).parent
DEFAULT_CATALOG = HERE / "catalog.yaml"
DEFAULT_RULES = HERE / "rules.yaml"
#: How duration falls with vCPUs before history measures it: one Python process in a pod uses few
#: cores; training frameworks use most of an instance; Spark spreads over every worker.
DEFAULT_SCALING = {"pod": 0.5, "sagemaker": 0.85, "glue": 0.9}


@dataclass(frozen=True)
class Option:
    """One thing the control room can choose: an instance type (times a count) or a pod shape."""

    target: SizingTarget
    instance_type: str
    vcpu: float  # per instance / worker
    memory_bytes: int  # per instance / worker
    gpu: int
    hourly_usd: float  # per instance / worker
    count: int = 1

    @property
    def total_memory(self) -> int:
        return self.memory_bytes * self.count

    @property
    def total_vcpu(self) -> float:
        return self.vcpu * self.count

    @property
    def total_hourly(self) -> float:
        return self.hourly_usd * self.count

    @property
    def label(self) -> str:
        return self.instance_type if self.count == 1 else f"{self.count}x {self.instance_type}"

    def with_count(self, count: int) -> Option:
        return Option(self.target, self.instance_type, self.vcpu, self.memory_bytes, self.gpu, self.hourly_usd, count)


def static_peak_option(
    catalog: Catalog, target: SizingTarget | str, peaks: Sequence[int], headroom: float
) -> Option | None:
    """Static peak sizing: the cheapest option (no GPU) holding the largest of ``peaks`` with
    ``headroom``, the one size a careful engineer would fix in advance knowing every peak. What
    learned sizes are measured against."""
    options = [o for o in catalog.for_target(target) if o.gpu == 0]
    if not peaks or not options:
        return None
    need = max(peaks) * headroom
    fitting = [o for o in options if o.total_memory >= need]
    if not fitting:
        return max(options, key=lambda o: o.total_memory)
    return min(fitting, key=lambda o: (o.total_hourly, o.total_memory))


def pod_name(cpu: float, memory: int) -> str:
    """The instance-type name of a pod shape, e.g. ``pod-2-8Gi`` or ``pod-500m-1Gi``."""
    return f"pod-{format_cpu(cpu)}-{format_memory(memory)}"


@dataclass(frozen=True)
class Catalog:
    """Every option per target, and the safe default per target."""

    options: tuple[Option, ...]
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "built-in"

    def __post_init__(self) -> None:
        # Indexes: the policy looks options up for every observation of every decision.
        by_target: dict[str, list[Option]] = {}
        by_name: dict[tuple[str, str], list[Option]] = {}
        for option in self.options:
            by_target.setdefault(option.target.value, []).append(option)
            by_name.setdefault((option.target.value, option.instance_type), []).append(option)
        object.__setattr__(self, "_by_target", by_target)
        object.__setattr__(self, "_by_name", by_name)

    def for_target(self, target: SizingTarget | str) -> list[Option]:
        by_target: dict[str, list[Option]] = self.__dict__["_by_target"]
        return list(by_target.get(str(target), ()))

    def find(self, target: SizingTarget | str, instance_type: str | None, count: int = 1) -> Option | None:
        """The option named ``instance_type`` (with ``count`` for Glue) or None."""
        if not instance_type:
            return None
        by_name: dict[tuple[str, str], list[Option]] = self.__dict__["_by_name"]
        same = by_name.get((str(target), instance_type))
        if not same:
            return None
        for option in same:
            if option.count == count:
                return option
        return same[0].with_count(max(1, count))

    def default(self, target: SizingTarget | str) -> Option:
        """The safe default for ``target``: the catalog's ``defaults`` entry or its middle option."""
        entry = self.defaults.get(str(SizingTarget(target)), {})
        found = self.find(target, entry.get("instance_type"), int(entry.get("instance_count", 1)))
        if found is not None:
            return found
        options = sorted(self.for_target(target), key=lambda o: o.total_memory)
        if not options:
            raise ConfigError(f"catalog {self.source}: has no options for target {target}; add some")
        return options[len(options) // 2]


def parse_catalog(data: Any, source: str = "built-in") -> Catalog:
    """Build a :class:`Catalog` from the YAML structure (see ``catalog.yaml``), every key checked."""
    checked = validated(CatalogFile, data, "catalog", source)
    options: list[Option] = [
        Option(
            SizingTarget.SAGEMAKER,
            entry.name,
            entry.vcpu,
            int(entry.memory_gib * GIB),
            entry.gpu,
            entry.hourly_usd,
        )
        for entry in checked.sagemaker
    ]
    if checked.glue is not None:
        glue = checked.glue
        for worker in glue.workers:
            base = Option(
                SizingTarget.GLUE,
                worker.name,
                worker.vcpu,
                int(worker.memory_gib * GIB),
                0,
                worker.dpu * glue.dpu_hourly_usd,
            )
            options.extend(base.with_count(count) for count in glue.worker_counts)
    if checked.pod is not None:
        pod = checked.pod
        for cpu in pod.cpu_steps:
            for gib in pod.memory_gib_steps:
                if pod.min_gib_per_vcpu <= gib / cpu <= pod.max_gib_per_vcpu:
                    memory = int(gib * GIB)
                    options.append(
                        Option(
                            SizingTarget.POD,
                            pod_name(cpu, memory),
                            cpu,
                            memory,
                            0,
                            cpu * pod.vcpu_hourly_usd + gib * pod.gib_hourly_usd,
                        )
                    )
    defaults: dict[str, dict[str, Any]] = {str(t): size.model_dump() for t, size in checked.defaults.items()}
    catalog = Catalog(tuple(options), defaults, source)
    for target in SizingTarget:
        if catalog.for_target(target):
            catalog.default(target)
    return catalog


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"{what} {path}: cannot read it ({error.strerror}); check the path") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {path}: not valid YAML ({str(error).splitlines()[0]})") from error


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog at ``path`` (or the shipped one)."""
    chosen = Path(path) if path else DEFAULT_CATALOG
    return parse_catalog(_read_yaml(chosen, "catalog"), str(chosen))


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class SizeStep:
    """Inputs up to ``up_to_bytes`` (None: any size) get ``instance_type`` x ``instance_count``."""

    up_to_bytes: int | None
    instance_type: str
    instance_count: int = 1


@dataclass(frozen=True)
class Rule:
    """Size thresholds for tasks matching ``target`` and the ``pipeline``/``task`` globs."""

    target: SizingTarget
    steps: tuple[SizeStep, ...]
    pipeline: str = "*"
    task: str = "*"

    def matches(self, pipeline: str, task: str, target: SizingTarget) -> bool:
        return (
            self.target == target
            and fnmatch.fnmatchcase(pipeline, self.pipeline)
            and fnmatch.fnmatchcase(task, self.task)
        )

    def step_for(self, input_bytes: int) -> SizeStep:
        for step in self.steps:
            if step.up_to_bytes is None or input_bytes <= step.up_to_bytes:
                return step
        return self.steps[-1]


@dataclass(frozen=True)
class Rules:
    """The policy's knobs and a team's explicit rules (first matching rule wins)."""

    rules: tuple[Rule, ...] = ()
    headroom: float = 1.3
    min_history: int = 3
    #: Most recent successful runs the fits use: recent behaviour counts, and Theil-Sen is O(n^2).
    history_window: int = 60
    memory_quantile: float = 0.95
    #: Per target: duration ~ work / vCPU^cpu_scaling until history measures it.
    cpu_scaling: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SCALING))
    process_overhead_bytes: int = 256 * 2**20
    source: str = "built-in"

    def scaling_for(self, target: SizingTarget | str) -> float:
        return self.cpu_scaling.get(str(SizingTarget(target)), 0.7)

    def match(self, pipeline: str, task: str, target: SizingTarget) -> Rule | None:
        for rule in self.rules:
            if rule.matches(pipeline, task, target):
                return rule
        return None


def parse_rules(data: Any, catalog: Catalog, source: str = "built-in") -> Rules:
    """Build :class:`Rules` from YAML, every key checked and every size naming a catalog option."""
    checked = validated(RulesFile, data, "rules", source)
    parsed: list[Rule] = []
    for index, entry in enumerate(checked.rules):
        target = SizingTarget(entry.target)
        steps: list[SizeStep] = []
        for step_index, size in enumerate(entry.sizes):
            where = f"rules {source}: rules[{index}].sizes[{step_index}]"
            try:
                up_to_bytes = None if size.up_to is None else memory_bytes(str(size.up_to))
            except QuantityError as error:
                raise ConfigError(f"{where}: up_to {error}") from None
            if catalog.find(target, size.instance_type, size.instance_count) is None:
                raise ConfigError(
                    f"{where}: instance_type {size.instance_type!r} is not in the {target} catalog ({catalog.source})"
                )
            steps.append(SizeStep(up_to_bytes, size.instance_type, size.instance_count))
        steps.sort(key=lambda s: float("inf") if s.up_to_bytes is None else s.up_to_bytes)
        parsed.append(Rule(target, tuple(steps), entry.pipeline, entry.task))
    policy = checked.policy
    try:
        overhead = memory_bytes(str(policy.process_overhead))
    except QuantityError as error:
        raise ConfigError(f"rules {source}: policy.process_overhead {error}") from None
    return Rules(
        rules=tuple(parsed),
        headroom=policy.headroom,
        min_history=policy.min_history,
        history_window=policy.history_window,
        memory_quantile=policy.memory_quantile,
        cpu_scaling=_scaling(policy.cpu_scaling, source),
        process_overhead_bytes=overhead,
        source=source,
    )


def _scaling(value: float | Mapping[Any, float] | None, source: str) -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_SCALING)
    values = {target.value: float(value) for target in SizingTarget} if isinstance(value, int | float) else value
    if not all(0 <= v <= 1 for v in values.values()):
        raise ConfigError(
            f"rules {source}: policy.cpu_scaling must be a number in [0, 1] or one per target (pod, sagemaker, glue)"
        )
    return {**DEFAULT_SCALING, **{str(k): float(v) for k, v in values.items()}}


def load_rules(path: str | Path | None = None, catalog: Catalog | None = None) -> Rules:
    """The rules at ``path`` (or the shipped ones), checked against ``catalog``."""
    chosen = Path(path) if path else DEFAULT_RULES
    return parse_rules(_read_yaml(chosen, "rules"), catalog or load_catalog(), str(chosen))
