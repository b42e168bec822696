"""The served control room (uvicorn on 127.0.0.1) refuses before reading, and counts across workers."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.control_room.conftest import TOKEN, Served, serve
from tests.control_room.test_app import sizing_body

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUNDRED_MB = 100 * 1024 * 1024


@pytest.fixture
def small_limit(tmp_path: Path) -> Iterator[Served]:
    running = serve(
        f"sqlite:///{tmp_path / 'limits.db'}", tmp_path, extra_env={"HEADRACE_CONTROL_ROOM_MAX_BODY_BYTES": "4096"}
    )
    yield running
    running.stop()


def first_answer(url: str, head: str, seconds: float = 5) -> str:
    """Send only a request's head (its body never comes) and return the status line answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=seconds) as sock:
        sock.sendall(head.encode())
        return sock.recv(4096).decode("latin-1").splitlines()[0]


@pytest.mark.integration
def test_a_100_mb_body_is_refused_from_its_head_before_any_of_it_is_read(served: Served) -> None:
    post = f"POST /v1/sizing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {HUNDRED_MB}\r\n"
    assert first_answer(served.url, post + "\r\n") == "HTTP/1.1 401 Unauthorized"
    assert (
        first_answer(served.url, post + f"Authorization: Bearer {TOKEN}\r\n\r\n")
        == "HTTP/1.1 413 Request Entity Too Large"
    )


@pytest.mark.integration
def test_the_body_limit_is_a_setting_and_counts_bodies_sent_without_a_length(small_limit: Served) -> None:
    with httpx.Client(base_url=small_limit.url, headers=AUTH) as client:
        assert client.post("/v1/sizing", json=sizing_body()).status_code == 200
        padded = sizing_body(declared={"note": "x" * 5000})
        too_big = client.post("/v1/sizing", json=padded)
        assert too_big.status_code == 413 and "4096" in too_big.json()["detail"]
        chunks = iter(
            [b'{"pipeline": "recipes", "task": "train", "run_id": "r1", "declared": {"note": "', b"x" * 5000, b'"}}']
        )
        chunked = client.post("/v1/sizing", content=chunks, headers={"content-type": "application/json"})
        assert chunked.status_code == 413


def scrape(url: str) -> str:
    request = urllib.request.Request(f"{url}/metrics", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/plain")
        return response.read().decode()


def sizing_count(text: str) -> float:
    match = re.search(
        r'headrace_control_room_requests_total\{method="POST",route="/v1/sizing",status="200"\} (\S+)', text
    )
    return float(match.group(1)) if match else 0.0


@pytest.mark.integration
@pytest.mark.slow
def test_metrics_add_up_every_worker_and_time_requests_in_a_histogram(tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"  # where serve makes its metrics folder
    temporary.mkdir()
    running = serve(f"sqlite:///{tmp_path / 'workers.db'}", tmp_path, workers=2, extra_env={"TMPDIR": str(temporary)})
    try:
        for number in range(40):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=running.url, headers=AUTH) as client:
                assert client.post("/v1/sizing", json=sizing_body(run_id=f"r{number}")).status_code == 200
        (folder,) = temporary.glob("headrace-metrics-*")
        counting = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("counter_*.db")}
        assert len(counting) == 2, counting  # both workers answered sizing requests
        for _ in range(10):  # whichever worker answers the scrape, it counts all 40
            text = scrape(running.url)
            assert sizing_count(text) == 40, text
        inf_bucket = re.findall(
            r'headrace_control_room_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="/v1/sizing"\} (\S+)',
            text,
        )
        assert [float(b) for b in inf_bucket] == [40.0]
    finally:
        running.stop()
    assert not list(temporary.glob("headrace-metrics-*"))  # serve removes the folder it made
