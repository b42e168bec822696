"""headrace's step side: everything that runs inside a task, in a pod or on this machine.

Four rooms, each importing only the ones below it (``.importlinter`` keeps it so):

- :mod:`steps.backends`: the hand-offs to BigQuery, Athena, SageMaker and Glue, each with its
  local side (DuckDB, a subprocess, Arrow or local Spark);
- :mod:`steps.runtime`: the in-pod runtime (``python -m steps run|size|exit-handler``), the task
  context and values, and the control room's HTTP client;
- :mod:`steps.storage`: the artifact store (a folder or S3) and the AWS session;
- :mod:`steps.core`: contract, errors, settings, quantities and names shared by every package.

The public names a pipeline imports (``from steps import bigquery, glue, sagemaker``) load on
first use, so ``import steps`` costs nothing at task start-up.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from steps.backends import athena, bigquery, glue, sagemaker

__all__ = ["athena", "bigquery", "glue", "sagemaker"]

_PUBLIC = {name: f"steps.backends.{name}" for name in __all__}


def __getattr__(name: str) -> ModuleType:
    """``steps.bigquery`` and friends: the backend modules a pipeline names, imported when used."""
    if name in _PUBLIC:
        return importlib.import_module(_PUBLIC[name])
    raise AttributeError(f"module 'steps' has no attribute {name!r}")
