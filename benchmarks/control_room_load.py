"""Latency and throughput of the control room under load: POST /v1/sizing and /v1/observations.

Starts ``headrace control-room serve`` (uvicorn, one process) on SQLite and on PostgreSQL, seeds
one task with 60 runs of history (so every sizing call fits real models), then drives it from
this process with a hand-written HTTP/1.1 client (``--client httpx`` for httpx):

- **open loop at a fixed rate** (default 200 requests/s): requests start on schedule whether or
  not earlier ones finished; latency counts from the scheduled start, so a stall shows up instead
  of hiding (no coordinated omission);
- **closed loop** with 16 concurrent clients: the most the service answers per second.

Three kinds of traffic: sizing alone (the task's history unchanged, so every call is served from
the policy's memoised fits: the cheap case), observations alone, and **mixed**: every other request
an observation of the task being sized, so every sizing call refits its models on a changed
history (the expensive case, and what a busy day of many pipelines looks like).

Client and server share this machine (2 cores here), so the figures are conservative. The client
pauses its own garbage collector while it measures: one full collection of the client (25-30 ms
here) delays every send scheduled meanwhile, which would count against the service.
Run: ``.venv/bin/python benchmarks/control_room_load.py [--seconds 10] [--rate 200] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
counter = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(db: str, state: Path, workers: int = 1) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(
        HEADRACE_STATE_DIR=str(state), HEADRACE_CONTROL_ROOM_TOKEN=TOKEN, HEADRACE_CONFIG=str(state / "none.toml")
    )
    command = [sys.executable, "-c", "from pipelines.cli import main; main()", "control-room", "serve"]
    command += ["--port", str(port), "--db", db, "--no-notify", "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"control room did not start on {db}")


def sizing_body() -> dict[str, Any]:
    return {
        "pipeline": "bench",
        "task": "train",
        "run_id": f"s{next(counter)}",
        "target": "sagemaker",
        "input_bytes": 3_000_000_000 + next(counter) % 1000 * 1_000_000,
    }


def observation_body() -> dict[str, Any]:
    index = next(counter)
    return {
        "pipeline": "bench",
        "task": "train",
        "run_id": f"o{index}",
        "attempt": 1,
        "outcome": "succeeded",
        "target": "sagemaker",
        "instance_type": "ml.m5.xlarge",
        "input_bytes": 1_000_000_000 + index % 500 * 10_000_000,
        "duration_seconds": 200.0 + index % 50,
        "peak_memory_bytes": 3_000_000_000 + index % 500 * 25_000_000,
    }


def seed(url: str) -> None:
    with httpx.Client(headers=HEADERS) as client:
        for _ in range(60):
            client.post(f"{url}/v1/observations", json=observation_body()).raise_for_status()


Post = Callable[[], Awaitable[int]]
#: The next request to send: its path and JSON body.
Route = Callable[[], tuple[str, dict[str, Any]]]
_mixed_turn = itertools.count()


def mixed_request() -> tuple[str, dict[str, Any]]:
    """Observation and sizing of the same task in turn: each sizing call finds a new history."""
    if next(_mixed_turn) % 2:
        return "/v1/sizing", sizing_body()
    return "/v1/observations", observation_body()


TRAFFIC: dict[str, Route] = {
    "POST /v1/sizing": lambda: ("/v1/sizing", sizing_body()),
    "POST /v1/observations": lambda: ("/v1/observations", observation_body()),
    "mixed (refits)": mixed_request,
}


async def scheduled(posts: list[Post], rate: float, seconds: float) -> dict[str, float]:
    """Send ``rate`` requests a second for ``seconds`` over the given senders (one per
    connection): requests start on a fixed schedule whether or not earlier ones finished, and
    latency counts from the scheduled start, so a stall shows up instead of hiding."""
    latencies: list[float] = []
    errors = 0
    slots = iter(range(int(rate * seconds)))
    begin = time.perf_counter()

    async def sender(post: Post) -> None:
        nonlocal errors
        for index in slots:
            start_at = begin + index / rate
            delay = start_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                errors += await post() >= 300
            except (OSError, asyncio.IncompleteReadError, ValueError, httpx.HTTPError):
                errors += 1
            latencies.append(time.perf_counter() - start_at)

    await asyncio.gather(*(sender(post) for post in posts))
    return summarize(latencies, errors, time.perf_counter() - begin)


async def open_loop(url: str, route: Route, rate: float, seconds: float, connections: int = 64) -> dict[str, float]:
    """The open loop through httpx (``--client httpx``)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits, timeout=10) as client:

        async def post() -> int:
            path, body = route()
            return (await client.post(url + path, json=body)).status_code

        return await scheduled([post] * connections, rate, seconds)


async def closed_loop(url: str, route: Route, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        begin = time.perf_counter()
        stop = begin + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                sent = time.perf_counter()
                try:
                    path, body = route()
                    response = await client.post(url + path, json=body)
                    errors += response.status_code >= 300
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - begin
    return summarize(latencies, errors, elapsed)


class RawConnection:
    """One keep-alive HTTP/1.1 connection written by hand: a load client must cost the machine far
    less than the service it measures, and httpx spends about as much CPU per request as the
    control room does (on 2 shared cores that shows up as the service's tail latency)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        host_port = url.removeprefix("http://")
        host, port = host_port.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        return cls(reader, writer, host_port)

    async def post(self, path: str, body: bytes) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def open_loop_raw(url: str, route: Route, rate: float, seconds: float, connections: int = 64) -> dict[str, float]:
    """The open loop through :class:`RawConnection` (the default)."""
    import json

    pool = [await RawConnection.open(url) for _ in range(connections)]

    def poster(connection: RawConnection) -> Post:
        def post() -> Awaitable[int]:
            path, body = route()
            return connection.post(path, json.dumps(body).encode())

        return post

    try:
        return await scheduled([poster(connection) for connection in pool], rate, seconds)
    finally:
        for connection in pool:
            connection.close()


@contextmanager
def client_collector_paused() -> Iterator[None]:
    """No garbage collection in the measuring client while a loop runs (see the module docstring)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def server_collector(url: str) -> tuple[float, float]:
    """The server's garbage-collection pause seconds so far (all generations) and its full
    collections, from its /metrics (with several workers: the one that answers)."""
    text = httpx.get(f"{url}/metrics", headers=HEADERS, timeout=10).text
    seconds = full = 0.0
    for line in text.splitlines():
        if line.startswith("headrace_control_room_gc_pause_seconds_total{"):
            seconds += float(line.split()[-1])
        elif line.startswith('headrace_control_room_gc_collections_total{generation="2"}'):
            full = float(line.split()[-1])
    return seconds, full


def measured(url: str, loop: Coroutine[Any, Any, dict[str, float]]) -> tuple[dict[str, float], tuple[float, float]]:
    """Run one load ``loop`` with the client's collector paused; its result, and the server's
    collection pause seconds and full collections during it."""
    before = server_collector(url)
    with client_collector_paused():
        result = asyncio.run(loop)
    after = server_collector(url)
    return result, (after[0] - before[0], after[1] - before[1])


def summarize(latencies: list[float], errors: int, elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "errors": errors,
        "throughput": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


def postgres_database(base: str) -> str:
    import psycopg

    name = f"headrace_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base.rstrip('/')}/{name}"


def drop_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--clients", type=int, default=16, help="closed loop: concurrent clients")
    parser.add_argument("--connections", type=int, default=64, help="open loop: connections in flight at most")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="open-loop client: hand-written HTTP/1.1 or httpx"
    )
    args = parser.parse_args(argv)
    console = Console(width=170)
    table = Table(
        title=f"Control room under load (uvicorn, {args.workers} worker(s); {os.cpu_count()} cores shared with the client)"
    )
    for column in (
        "database",
        "traffic",
        "load",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server GC ms",
        "full GCs",
        "p99 <= 25 ms",
    ):
        table.add_column(column, justify="left" if column in ("database", "traffic", "load") else "right")
    databases: list[tuple[str, str | None]] = [] if args.skip_sqlite else [("SQLite (WAL)", None)]
    if not args.skip_postgres:
        databases.append(("PostgreSQL", args.postgres))
    with tempfile.TemporaryDirectory() as tmp:
        for label, base in databases:
            state = Path(tmp) / label.split()[0]
            state.mkdir()
            db = f"sqlite:///{state / 'control-room.db'}" if base is None else postgres_database(base)
            process, url = start(db, state, args.workers)
            try:
                seed(url)
                for traffic, route in TRAFFIC.items():
                    asyncio.run(open_loop(url, route, 20, 1.0))  # warm up
                    console.print(f"{label} {traffic}: open loop at {args.rate:g}/s for {args.seconds:g}s ...")
                    fixed_loop = open_loop_raw if args.client == "raw" else open_loop
                    fixed, fixed_gc = measured(url, fixed_loop(url, route, args.rate, args.seconds, args.connections))
                    console.print(f"{label} {traffic}: closed loop, {args.clients} clients ...")
                    most, most_gc = measured(url, closed_loop(url, route, args.clients, args.seconds / 2))
                    opened = f"open {args.rate:g}/s, {args.connections} conns ({args.client})"
                    for load, result, (gc_seconds, full_collections) in (
                        (opened, fixed, fixed_gc),
                        (f"closed x{args.clients}", most, most_gc),
                    ):
                        table.add_row(
                            label,
                            traffic,
                            load,
                            f"{result['requests']:.0f}",
                            f"{result['errors']:.0f}",
                            f"{result['throughput']:.0f}",
                            f"{result['p50_ms']:.1f}",
                            f"{result['p99_ms']:.1f}",
                            f"{result['max_ms']:.1f}",
                            f"{gc_seconds * 1000:.1f}",
                            f"{full_collections:.0f}",
                            ("[green]yes[/]" if result["p99_ms"] <= 25 else "[red]no[/]")
                            if load.startswith("open")
                            else "",
                        )
            finally:
                process.terminate()
                process.wait(10)
                if base is not None:
                    drop_database(db)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
