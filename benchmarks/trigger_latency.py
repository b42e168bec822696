"""Event triggers on the embedded default: publish-to-first-task latency and sustained messages/s.

Starts the real ``headrace listen`` on a trivial one-task pipeline (its task records the moment it
starts) against the RabbitMQ on 127.0.0.1:5672 (guest/guest, the default vhost; the benchmark's
queues are deleted at the end), then:

- ``latency``: ``--messages`` messages published one at a time, ``--gap`` seconds apart; each
  latency is the task's first line of code minus the publish time (same machine, same clock);
- ``throughput``: ``--burst`` messages published at once; messages/s is the burst over the time
  from the first publish to the last run's task;
- ``CPU s/message``: CPU time of the listener and all its task processes per message, which a
  machine loaded by other work inflates far less than the wall-clock figures.

Each mode runs with the fork server (the default) and without (``--no-fork-server``). Targets
(issue 17): p50 < 0.5 s, p99 < 2 s on 2 cores.

    .venv/bin/python benchmarks/trigger_latency.py [--messages 40] [--gap 0.5] [--burst 60] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pika
from rich.console import Console
from rich.table import Table

URL = "amqp://guest:guest@127.0.0.1:5672/%2f"

FLOW = """
import os, time
from pathlib import Path
from pipelines import Pipeline, Queue, step

@step
def first(mark: str = "") -> str:
    Path(os.environ["BENCH_MARKS"], mark).write_text(repr(time.time()))
    return mark

with Pipeline("bench-trigger", triggers=[Queue("amqp://127.0.0.1:5672/", queue="QUEUE", params={"mark": "$.mark"})]) as pipeline:
    pipeline.param("mark", "")
    first(mark=pipeline.param("mark"))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def publish(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, mark: str) -> float:
    at = time.time()
    channel.basic_publish("", queue, json.dumps({"mark": mark}).encode(), pika.BasicProperties(message_id=mark))
    return at


def wait_marks(marks: Path, names: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {p.name: float(p.read_text()) for p in marks.iterdir() if p.name in names and p.stat().st_size}
        if len(found) == len(names):
            return found
        time.sleep(0.02)
    raise SystemExit(f"only {len(list(marks.iterdir()))} of {len(names)} runs started within {timeout:.0f}s")


def measure(fork_server: bool, args: argparse.Namespace, console: Console) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="bench-trigger-"))
    queue = f"bench.{uuid.uuid4().hex[:8]}"
    (work / "flow.py").write_text(textwrap.dedent(FLOW).replace("QUEUE", queue))
    marks = work / "marks"
    marks.mkdir()
    env = {**os.environ, "BENCH_MARKS": str(marks), "HEADRACE_STATE_DIR": str(work / ".headrace")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "listen", "flow.py:pipeline"]
    command += ["--concurrency", str(args.concurrency), "--parallel", "1"]
    command += [] if fork_server else ["--no-fork-server"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    listener = subprocess.Popen(command, cwd=work, env=env, stderr=subprocess.PIPE, text=True)
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    try:
        assert listener.stderr is not None
        for line in listener.stderr:
            if "consuming" in line:
                break
        warm = publish(channel, queue, "warm-up")
        wait_marks(marks, ["warm-up"], 60)
        del warm
        published: dict[str, float] = {}
        for index in range(args.messages):
            mark = f"latency-{index}"
            published[mark] = publish(channel, queue, mark)
            time.sleep(args.gap)
        started = wait_marks(marks, list(published), 120)
        latencies = [started[m] - published[m] for m in published]
        burst = [f"burst-{i}" for i in range(args.burst)]
        first = time.time()
        for mark in burst:
            publish(channel, queue, mark)
        done = wait_marks(marks, burst, 600)
        rate = len(burst) / (max(done.values()) - first)
    finally:
        listener.terminate()
        listener.wait(60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        channel.queue_delete(queue)
        channel.queue_delete(f"{queue}.dead")
        connection.close()
    return {
        "p50": statistics.median(latencies),
        "p90": percentile(latencies, 90),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "rate": rate,
        # The listener and every task process it waited for, over every message (warm-up included).
        "cpu": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / (args.messages + args.burst + 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between latency messages")
    parser.add_argument("--burst", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    console = Console()
    table = Table(
        title=f"publish -> first task ({args.messages} messages, {args.gap}s apart; burst {args.burst}; "
        f"--concurrency {args.concurrency}; {os.cpu_count()} cores)",
        title_justify="left",
    )
    for column in ("task processes", "p50", "p90", "p99", "max", "messages/s (burst)", "CPU s/message"):
        table.add_column(column, justify="right")
    for fork_server in (True, False):
        result = measure(fork_server, args, console)
        table.add_row(
            "fork server" if fork_server else "exec per task",
            *(f"{result[k]:.3f} s" for k in ("p50", "p90", "p99", "max")),
            f"{result['rate']:.1f}",
            f"{result['cpu']:.2f}",
        )
    console.print(table)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(f"targets: p50 < 0.5 s, p99 < 2 s; load average at the end: {load}")


if __name__ == "__main__":
    main()
