"""A sized task that needs about 1.5 GiB for a small input: more than the control room's first size
for an input that small (its rules give pod-500m-1Gi up to 256 MiB of input), less than the next
size up."""

from __future__ import annotations

import os
import time

from pipelines import Backoff, Pipeline, Retry, step


@step
def wanted(megabytes: int) -> dict[str, int]:
    return {"megabytes": int(megabytes)}


@step(sizing="auto", retry=Retry(limit=2, backoff=Backoff(duration=1, factor=1)))
def hungry(order: dict[str, int]) -> int:
    print(f"hungry: process {os.getpid()} allocating {order['megabytes']} MiB", flush=True)
    block = b"x" * (order["megabytes"] * 1024 * 1024)  # written, so resident
    print(f"hungry: holding {len(block) >> 20} MiB", flush=True)
    time.sleep(1.5)
    return len(block) >> 20


with Pipeline("cluster-oom", params={"megabytes": 1536}) as pipeline:
    hungry(order=wanted(megabytes=pipeline.param("megabytes")))
