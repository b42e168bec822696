"""headrace's public DSL: define pipelines in Python, run them here or on Argo.

Everything a pipeline module needs is exported here; every other module is internal. Importing
this package stays light (no Hera): the in-pod entrypoint and the local runner import it per task.
"""

from pipelines.graph import (
    Backoff,
    Notify,
    Param,
    Pipeline,
    PipelineInvalid,
    Resources,
    Retry,
    Schedule,
    Step,
    TaskHandle,
    step,
)
from pipelines.triggers import After, Queue
from steps.core.contract import ArtifactRef, SizingDecision
from steps.core.errors import HeadraceError
from steps.runtime.context import StepContext
from steps.runtime.values import Artifact

__version__ = "0.1.0"

__all__ = [
    "After",
    "Artifact",
    "ArtifactRef",
    "Backoff",
    "HeadraceError",
    "Notify",
    "Param",
    "Pipeline",
    "PipelineInvalid",
    "Queue",
    "Resources",
    "Retry",
    "Schedule",
    "SizingDecision",
    "Step",
    "StepContext",
    "TaskHandle",
    "__version__",
    "step",
]
