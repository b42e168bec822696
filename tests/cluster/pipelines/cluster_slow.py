"""One task that sleeps for as many seconds as asked: a run to stop while it runs."""

from __future__ import annotations

import time

from pipelines import Pipeline, step


@step
def wait(seconds: int) -> int:
    print(f"waiting {seconds}s", flush=True)
    time.sleep(int(seconds))
    return int(seconds)


with Pipeline("cluster-slow", params={"seconds": 60}) as pipeline:
    wait(seconds=pipeline.param("seconds"))
