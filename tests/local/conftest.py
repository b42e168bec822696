"""Helpers for the local runner's tests: pipelines written as real files, run for real."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.local import RunSummary, run_pipeline
from pipelines.runs import RunStore
from steps.core.settings import load_settings
from steps.runtime.loader import load_object

HEADER = """
import os, sys, time, json
from pathlib import Path
from pipelines import Pipeline, step, Retry, Backoff, Resources
"""


@pytest.fixture
def flow(tmp_path: Path) -> Callable[[str], str]:
    """Write a pipeline module (body after the common imports) and return its spec."""

    def write(body: str) -> str:
        path = tmp_path / f"flow_{uuid.uuid4().hex[:8]}.py"
        path.write_text(HEADER + textwrap.dedent(body))
        return f"{path}:pipeline"

    return write


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., RunSummary]:
    """Run a spec with run_pipeline (live view off), in the test's state folder."""

    def go(spec: str, **options: Any) -> RunSummary:
        options.setdefault("live", False)
        options.setdefault("settings", load_settings())
        options.setdefault("cwd", str(tmp_path))
        return run_pipeline(load_object(spec), spec=spec, **options)

    return go


@pytest.fixture
def store(isolated_headrace: Path) -> RunStore:
    return RunStore(isolated_headrace / "runs.db")


@pytest.fixture
def headrace() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start the real ``headrace`` command (a new process, as a user would); every process
    still running when the test ends is killed."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", "from pipelines.cli import main; main()", *args],
            cwd=cwd,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()
