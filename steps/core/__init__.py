"""The shared core: what every package of headrace may import, and which imports nothing of headrace.

The contract between runners, pods and the control room (:mod:`~steps.core.contract`), the errors
and their exit codes (:mod:`~steps.core.errors`), settings (:mod:`~steps.core.settings`), Kubernetes
quantities (:mod:`~steps.core.quantities`), labels and node names (:mod:`~steps.core.naming`), how sizes and durations read (:mod:`~steps.core.display`). Each module is imported on its own; this package imports
nothing, so the in-pod runtime pays only for what it uses.
"""

__all__ = ["contract", "display", "errors", "naming", "quantities", "settings"]
