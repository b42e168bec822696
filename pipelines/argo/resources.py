"""Kubernetes resource requirements from :class:`pipelines.graph.Resources`.

Memory is requested and limited at the same value unless ``memory_limit`` says otherwise: a pod
that outgrows its request is OOM-killed predictably (exit 137, which the control room reads to
size the next try) instead of squeezing its neighbours. CPU gets a request but no limit unless
``cpu_limit`` is set, because CFS throttling slows a step down without telling anyone. A task
with no resources gets none: the namespace's LimitRange decides.
"""

from __future__ import annotations

from hera.workflows.models import Quantity, ResourceRequirements

from pipelines.graph import Resources

GPU_RESOURCE = "nvidia.com/gpu"

#: The sizing node and the exit handler only run headrace's own light code.
SMALL = Resources(cpu="100m", memory="256Mi")


def requirements(resources: Resources) -> ResourceRequirements | None:
    """Requests and limits for ``resources``, or None when nothing is declared."""
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if resources.cpu:
        requests["cpu"] = str(resources.cpu)
    if resources.cpu_limit:
        limits["cpu"] = str(resources.cpu_limit)
    if resources.memory:
        requests["memory"] = str(resources.memory)
    memory_limit = resources.memory_limit or resources.memory
    if memory_limit:
        limits["memory"] = str(memory_limit)
    if resources.gpu:
        limits[GPU_RESOURCE] = str(resources.gpu)
    if not requests and not limits:
        return None
    return ResourceRequirements(
        requests={k: Quantity(v) for k, v in requests.items()} or None,
        limits={k: Quantity(v) for k, v in limits.items()} or None,
    )
