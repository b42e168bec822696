"""Fixtures for the backend suites: one bucket on the moto server, step contexts on either side."""

from __future__ import annotations

from pathlib import Path

import pytest

from steps.core.settings import Settings, load_settings
from steps.runtime.context import StepContext

BUCKET = "headrace-test"


@pytest.fixture
def s3_root(aws_env: str) -> str:
    """``s3://headrace-test/artifacts`` on a freshly reset moto server."""
    from steps.storage.aws import client_for

    client_for("s3", region="us-east-1", endpoint_url=aws_env).create_bucket(Bucket=BUCKET)
    return f"s3://{BUCKET}/artifacts"


def make_context(
    settings: Settings, *, pipeline: str = "demo", task: str = "extract", run_id: str = "r1"
) -> StepContext:
    """A step context as the entrypoint would build it for one attempt."""
    return StepContext(pipeline=pipeline, task=task, run_id=run_id, settings=settings, work_dir=Path.cwd())


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    return load_settings({"profile": "local", "artifact_root": str(tmp_path / "artifacts")})
