"""Shared by the parity suites: the local side under another machine time zone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.backends.conftest import s3_root

__all__ = ["local_run_in_zone", "s3_root"]

ROOT = Path(__file__).resolve().parents[2]


def local_run_in_zone(dialect: str, zone: str) -> dict[str, Any]:
    """The corpus verdicts of the local engine in a process whose machine zone is ``zone``."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.parity.run_local", dialect],
        cwd=ROOT,
        env={**os.environ, "TZ": zone},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
