"""A task that fails until a marker file says it failed once already: a run to retry."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines import Pipeline, step


@step
def flaky(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once", encoding="utf-8")
        print("flaky: failing the first time", flush=True)
        raise RuntimeError("first attempt fails on purpose")
    print(f"flaky: passing (pid {os.getpid()})", flush=True)
    return "ok"


with Pipeline("cluster-flaky", params={"marker": "/tmp/headrace-flaky-marker"}) as pipeline:
    flaky(marker=pipeline.param("marker"))
