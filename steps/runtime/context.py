"""What a running step knows about itself: its run, its parameters, its store, its size.

A step function that declares a parameter named ``ctx`` (or annotated ``StepContext``) receives
one. Backends (SageMaker, Glue, Athena, BigQuery) take it to find their profile, settings, the
artifact store and the control room's sizing decision for this attempt.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from steps.core.contract import ArtifactRef, SizingDecision
from steps.core.settings import Settings
from steps.storage.artifacts import ArtifactStore, open_store

ProgressSink = Callable[[float, float, str], None]


def _no_progress(done: float, total: float, message: str) -> None:
    return None


@dataclass
class StepContext:
    """The running task's identity, parameters, settings and sizing; one per attempt."""

    pipeline: str
    task: str
    run_id: str
    settings: Settings
    attempt: int = 1
    params: Mapping[str, str] = field(default_factory=dict)
    run_date: dt.date = field(default_factory=dt.date.today)
    sizing: SizingDecision | None = None
    #: Declared resources of the task (cpu, memory, gpu, instance_type, instance_count).
    resources: Mapping[str, Any] = field(default_factory=dict)
    work_dir: Path = field(default_factory=lambda: Path.cwd())
    progress_sink: ProgressSink = _no_progress
    #: Extra records a backend wants kept with the run (hyperparameters, code hash, data scanned).
    records: dict[str, Any] = field(default_factory=dict)
    _notices: int = 0

    @property
    def profile(self) -> str:
        return self.settings.profile

    @property
    def is_local(self) -> bool:
        return self.settings.profile == "local"

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store(
            self.settings.resolved_artifact_root,
            region=self.settings.aws_region,
            endpoint_url=self.settings.aws_endpoint_url,
        )

    @cached_property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"headrace.{self.pipeline}.{self.task}")

    def output_key(self, name: str) -> str:
        """Key prefix of an output: ``<pipeline>/<run_id>/<task>/<name>``."""
        return f"{self.pipeline}/{self.run_id}/{self.task}/{name}"

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Report progress; the local runner shows it as a bar, Argo logs it."""
        self.progress_sink(done, total, message)

    def record(self, **values: Any) -> None:
        """Keep values with this attempt's run record (experiment conditions, data scanned...)."""
        self.records.update(values)

    def notify(self, text: str, *, blocks: list[dict[str, Any]] | None = None, channel: str = "", key: str = "") -> str:
        """Send a message to Slack through the outbox: never fails, blocks or posts twice, even when
        the task is retried or resumed (see :mod:`steps.runtime.notices`). ``channel`` defaults to the
        pipeline's; ``key`` names the message within the run (default: the step's n-th message).
        Returns where it goes: ``slack #channel``, ``slack webhook`` or ``console`` (no Slack set up:
        printed to the task's log)."""
        from steps.runtime.notices import notify

        self._notices += 1
        return notify(
            self.settings,
            pipeline=self.pipeline,
            run_id=self.run_id,
            key=key or f"{self.task}/{self._notices}",
            text=text,
            blocks=blocks,
            channel=channel,
        )

    def instance_type(self, declared: str | None) -> str | None:
        """The instance type to use: the control room's choice when sized, else the declared one."""
        if self.sizing is not None and self.sizing.instance_type:
            return self.sizing.instance_type
        return declared or self.resources.get("instance_type")

    def instance_count(self, declared: int | None) -> int:
        if self.sizing is not None:
            return self.sizing.instance_count
        return int(declared or self.resources.get("instance_count") or 1)

    def artifact(self, ref: ArtifactRef) -> Any:
        """Wrap a reference as an :class:`~steps.runtime.values.Artifact` readable from this step."""
        from steps.runtime.values import Artifact

        return Artifact(ref, self.store)
