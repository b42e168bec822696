"""The shapes of ``catalog.yaml`` and ``rules.yaml``, checked by pydantic before anything is built.

A person edits these files. Read by hand, a typo such as ``hedroom:`` was silently dropped (the
policy kept 30% headroom while the team believed it had set 20%) and a bad value escaped as a bare
``ValueError``. Here every key is declared: an unknown key or a bad value is one line naming the
file, the key's path and what to write instead (:func:`validated`).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steps.core.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceEntry(_Strict):
    """One SageMaker instance type: vCPU, memory and GPUs per instance, price per instance-hour."""

    name: str = Field(min_length=1)
    vcpu: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    gpu: int = Field(default=0, ge=0)
    hourly_usd: float = Field(ge=0)


class GlueWorker(_Strict):
    """One Glue worker type: vCPU and memory per worker, and the DPUs it bills."""

    name: str = Field(min_length=1)
    vcpu: float = Field(gt=0)
    memory_gib: float = Field(gt=0)
    dpu: float = Field(gt=0)


class GlueSection(_Strict):
    dpu_hourly_usd: float = Field(ge=0)
    worker_counts: list[int] = Field(default_factory=lambda: [2, 5, 10, 20, 40], min_length=1)
    workers: list[GlueWorker] = Field(default_factory=list)


class PodSection(_Strict):
    """Pod shapes: every CPU step x memory step within the GiB-per-vCPU bounds."""

    vcpu_hourly_usd: float = Field(ge=0)
    gib_hourly_usd: float = Field(ge=0)
    cpu_steps: list[float] = Field(default_factory=list)
    memory_gib_steps: list[float] = Field(default_factory=list)
    min_gib_per_vcpu: float = Field(default=0, ge=0)
    max_gib_per_vcpu: float = Field(default=1e9, gt=0)


class DefaultSize(_Strict):
    instance_type: str = Field(min_length=1)
    instance_count: int = Field(default=1, ge=1)


class CatalogFile(_Strict):
    sagemaker: list[InstanceEntry] = Field(default_factory=list)
    glue: GlueSection | None = None
    pod: PodSection | None = None
    defaults: dict[Literal["pod", "sagemaker", "glue"], DefaultSize] = Field(default_factory=dict)


class SizeEntry(_Strict):
    """Inputs up to ``up_to`` (a Kubernetes quantity; absent: any size) get this size."""

    instance_type: str = Field(min_length=1)
    up_to: str | int | None = None
    instance_count: int = Field(default=1, ge=1)


class RuleEntry(_Strict):
    target: Literal["pod", "sagemaker", "glue"] = "pod"
    pipeline: str = "*"
    task: str = "*"
    sizes: list[SizeEntry] = Field(min_length=1)


class PolicySection(_Strict):
    headroom: float = Field(default=1.3, ge=1)
    min_history: int = Field(default=3, ge=1)
    history_window: int = Field(default=60, ge=3)
    memory_quantile: float = Field(default=0.95, gt=0, le=1)
    cpu_scaling: float | dict[Literal["pod", "sagemaker", "glue"], float] | None = None
    process_overhead: str | int = "256Mi"


class RulesFile(_Strict):
    policy: PolicySection = Field(default_factory=PolicySection)
    rules: list[RuleEntry] = Field(default_factory=list)


FileModel = TypeVar("FileModel", bound=BaseModel)


def validated(model: type[FileModel], data: Any, what: str, source: str) -> FileModel:
    """``data`` (parsed YAML) as ``model``, or a :class:`ConfigError` of one line naming the file,
    the first offending key and the fix."""
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as error:
        first = error.errors()[0]
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
        if first["type"] == "extra_forbidden":
            parent = _model_at(model, first["loc"][:-1])
            known = ", ".join(parent.model_fields) if parent is not None else ""
            hint = f"unknown key; the keys here are {known}" if known else "unknown key; remove it"
        else:
            hint = f"{first['msg'].lower()} (got {first.get('input')!r})"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ConfigError(f"{what} {source}: {path or '(top level)'}: {hint}{more}") from None


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the field at ``loc`` (list indexes and dict keys skipped)."""
    current: type[BaseModel] = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(str(part))
        if field is None:
            continue
        found = _inner_model(field.annotation)
        if found is None:
            return None
        current = found
    return current


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
