"""The Argo compiler: a :class:`pipelines.graph.Pipeline` to Workflow, WorkflowTemplate or
CronWorkflow, built through Hera and rendered as deterministic YAML.

Public surface (everything else in this package is internal)::

    compile_pipeline(pipeline, spec="examples/recipe_stream:pipeline", kind="workflow", settings=s) -> dict
    build(...)   -> the Hera object (Workflow / WorkflowTemplate / CronWorkflow), e.g. to submit
    to_yaml(obj) -> str, byte-identical for the same object

Concerns are split by module: :mod:`.commands` (argv of each pod), :mod:`.templates` (task
containers), :mod:`.resources`, :mod:`.sizing` (sizing nodes), :mod:`.exit_handler`,
:mod:`.dag`, :mod:`.workflow` (the shared spec), :mod:`.schedule` (CronWorkflow),
:mod:`.render` (YAML), :mod:`.compiler` (the entry points), :mod:`.version` (the oldest Argo
release the output runs on). The pipeline is validated first; a
broken one raises :class:`pipelines.graph.PipelineInvalid` listing every problem.

Hera (0.6 s to import) loads only when ``build`` or ``compile_pipeline`` is first used, so the
Argo client modules beside the compiler (status, logs, ...) start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipelines.argo.commands import image_spec
from pipelines.argo.kinds import KINDS, Kind
from pipelines.argo.render import to_yaml

if TYPE_CHECKING:
    from pipelines.argo.compiler import build, compile_pipeline

_LAZY = {"build", "compile_pipeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from pipelines.argo import compiler

        return getattr(compiler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KINDS", "Kind", "build", "compile_pipeline", "image_spec", "to_yaml"]
