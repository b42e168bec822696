"""Retries with backoff, a timeout and the exit handler: ``flaky`` fails its first attempt, ``late``
sleeps past its timeout."""

from __future__ import annotations

import time
from pathlib import Path

from pipelines import Backoff, Pipeline, Retry, step


@step(retry=Retry(limit=2, backoff=Backoff(duration=3, factor=2)))
def flaky(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once", encoding="utf-8")
        print("flaky: failing the first time", flush=True)
        raise RuntimeError("first attempt fails on purpose")
    print("flaky: passing the second time", flush=True)
    return "ok"


@step(timeout=3)
def late(seconds: int) -> int:
    time.sleep(int(seconds))
    return int(seconds)


with Pipeline("cluster-retries", params={"marker": "/tmp/headrace-retry-marker"}) as retries:
    flaky(marker=retries.param("marker"))

with Pipeline("cluster-timeout", params={"seconds": 60}) as timeout:
    late(seconds=timeout.param("seconds"))
