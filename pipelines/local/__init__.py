"""The embedded default: run any pipeline on this machine, with run records and resume.

``run_pipeline`` (:mod:`pipelines.local.start`) is the one entry point (``headrace run``, ``resume`` and backfill call
it); the scheduler lives in :mod:`pipelines.local.runner`, one attempt's process or thread in
:mod:`pipelines.local.attempt`, the rich live view in :mod:`pipelines.local.view`. Nothing here
imports Hera: it would cost 0.6 s on every local run.
"""

from __future__ import annotations

from pipelines.local.start import resolve_run_params, run_pipeline
from pipelines.local.summary import RunSummary, TaskSummary

__all__ = ["RunSummary", "TaskSummary", "resolve_run_params", "run_pipeline"]
