"""A sized task that needs about 1.5 GiB: more than the control room's first size for a small
input (1 GiB), less than the next one up (4 GiB)."""

from __future__ import annotations

import time

from pipelines import Backoff, Pipeline, Retry, step


@step(sizing="auto", retry=Retry(limit=2, backoff=Backoff(duration=1, factor=1)))
def hungry(megabytes: int) -> int:
    block = b"x" * (int(megabytes) * 1024 * 1024)  # written, so resident
    print(f"hungry: holding {len(block) >> 20} MiB", flush=True)
    time.sleep(1.5)
    return len(block) >> 20


with Pipeline("cluster-oom", params={"megabytes": 1536}) as pipeline:
    hungry(megabytes=pipeline.param("megabytes"))
