"""A sized task's pod is valid whatever was declared and whatever the control room chose.

Argo applies the sizing node's ``podSpecPatch`` to the pod of the task's template as a Kubernetes
strategic merge patch, so what the template declares and the patch does not mention survives.
Here the patch (:func:`steps.runtime.sizing_node.pod_spec_patch`, what the sizing node writes) is merged
into the compiled template's container the same way, for every combination of declared requests
and limits and chosen sizes, and the merged container is checked with Kubernetes' own rule for
resources (``ValidateResourceRequirements``: a request is at most its limit; an extended resource
such as a GPU is requested exactly at its limit), quantities read by the Kubernetes client's
``parse_quantity``.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from pipelines.argo import compile_pipeline
from pipelines.graph import Pipeline, Resources, Task
from steps.core.contract import SizingDecision, SizingTarget
from steps.core.settings import Settings
from steps.runtime.sizing_node import pod_spec_patch
from tests.argo.helpers import template

NATIVE = {"cpu", "memory", "ephemeral-storage"}
DECLARED = [
    Resources(cpu=cpu, cpu_limit=cpu_limit, memory=memory, memory_limit=memory_limit, gpu=gpu)
    for cpu, cpu_limit, memory, memory_limit, gpu in itertools.product(
        [None, "500m", "2"], [None, "1", "4"], [None, "1Gi"], [None, "2Gi"], [0, 1]
    )
]
CHOSEN = [(cpu, memory) for cpu, memory in itertools.product([None, "250m", "2", "8"], [None, "512Mi", "32Gi"])]


def _fn() -> None:
    return None


def strategic_merge(pod: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` applied to ``pod`` as Kubernetes merges a PodSpec: ``containers`` merge by
    ``name`` (patchMergeKey), structs and maps (``resources``, ``requests``, ``limits``) key by
    key, anything else replaced. That is all our patches contain."""

    def merge(base: Any, change: Any) -> Any:
        if isinstance(base, dict) and isinstance(change, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in change.items()}}
        return copy.deepcopy(change)

    merged = copy.deepcopy(pod)
    for container in patch.get("containers", []):
        target = next(c for c in merged["containers"] if c["name"] == container["name"])
        target.update(merge(target, container))
    return merged


def resource_errors(container: dict[str, Any]) -> list[str]:
    resources = container.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    found: list[str] = []
    for name, value in requests.items():
        if name in limits and parse_quantity(value) > parse_quantity(limits[name]):
            found.append(f"requests.{name} {value} > limits.{name} {limits[name]}")
        if name not in NATIVE and parse_quantity(value) != parse_quantity(limits.get(name, value)):
            found.append(f"requests.{name} must equal its limit")
    return found


def _sized_container(declared: Resources) -> dict[str, Any] | None:
    pipeline = Pipeline("sized")
    pipeline.add(Task(name="train", fn=_fn, arguments={}, outputs=("model",), resources=declared, sizing="auto"))
    if pipeline.problems():
        return None
    obj = compile_pipeline(pipeline, spec="flows/daily.py:pipeline", settings=Settings())
    container: dict[str, Any] = template(obj, "train")["container"]
    return container


def _decisions(declared: Resources) -> list[SizingDecision]:
    chosen = [
        SizingDecision(target=SizingTarget.POD, instance_type=f"pod-{cpu}-{memory}", cpu=cpu, memory=memory)
        for cpu, memory in CHOSEN
    ]
    fallback = SizingDecision(
        target=SizingTarget.POD, instance_type="declared", cpu=declared.cpu, memory=declared.memory, source="declared"
    )
    return [*chosen, fallback]


def test_every_declared_and_chosen_size_combination_gives_a_pod_kubernetes_accepts() -> None:
    checked = 0
    problems: list[str] = []
    for declared in DECLARED:
        container = _sized_container(declared)
        if container is None:
            continue
        assert resource_errors(container) == [], declared
        for decision in _decisions(declared):
            patch = pod_spec_patch(decision, declared.to_dict())
            (main,) = strategic_merge({"containers": [container]}, patch)["containers"]
            problems += [
                f"{declared} + {decision.cpu}/{decision.memory} ({decision.source}): {e}" for e in resource_errors(main)
            ]
            checked += 1
    assert checked > 300
    assert problems == []


def test_a_declared_cpu_limit_below_the_chosen_cpu_is_raised_to_it() -> None:
    declared = Resources(cpu="2", cpu_limit="4", memory="8Gi")
    container = _sized_container(declared)
    assert container is not None and container["resources"]["limits"]["cpu"] == "4"
    decision = SizingDecision(target=SizingTarget.POD, instance_type="pod-8-32Gi", cpu="8", memory="32Gi")
    (main,) = strategic_merge({"containers": [container]}, pod_spec_patch(decision, declared.to_dict()))["containers"]
    assert main["resources"]["requests"] == {"cpu": "8", "memory": "32Gi"}
    assert main["resources"]["limits"] == {"cpu": "8", "memory": "32Gi"}


def test_the_merge_keeps_what_the_patch_does_not_mention() -> None:
    pod = {"containers": [{"name": "main", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}}]}
    merged = strategic_merge(pod, {"containers": [{"name": "main", "resources": {"requests": {"cpu": "8"}}}]})
    assert resource_errors(merged["containers"][0]) == ["requests.cpu 8 > limits.cpu 4"]


def test_validate_refuses_a_cpu_limit_below_the_cpu_request() -> None:
    pipeline = Pipeline("limits")
    pipeline.add(Task(name="t", fn=_fn, arguments={}, outputs=("r",), resources=Resources(cpu="2", cpu_limit="1")))
    assert pipeline.problems() == [
        "pipeline limits, task t: resources.cpu_limit is below resources.cpu; raise the limit"
    ]
