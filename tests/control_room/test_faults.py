"""Kill the control room mid-load: every observation it acknowledged is still there afterwards."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from control_room.store import Store
from tests.control_room.conftest import TOKEN, fresh_postgres, serve

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def post_until_refused(url: str, worker: int, acked: list[str], stop: threading.Event) -> None:
    """Post observations one after another; remember each one the service answered 2xx to."""
    index = 0
    while not stop.is_set():
        run_id = f"w{worker}-r{index}"
        body = json.dumps(
            {
                "pipeline": "load",
                "task": "t",
                "run_id": run_id,
                "attempt": 1,
                "outcome": "succeeded",
                "input_bytes": index,
                "peak_memory_bytes": 1000 + index,
            }
        ).encode()
        request = urllib.request.Request(
            f"{url}/v1/observations",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if 200 <= response.status < 300:
                    acked.append(run_id)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return
        index += 1


def kill_mid_load(db: str, tmp_path: Path) -> None:
    served = serve(db, tmp_path)
    acked: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=post_until_refused, args=(served.url, w, acked, stop)) for w in range(4)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    served.process.kill()  # SIGKILL: no shutdown hook, no flush
    served.process.wait(10)
    stop.set()
    for worker in workers:
        worker.join(10)
    assert len(acked) >= 200, f"only {len(acked)} observations accepted before the kill: {served.log.read_text()}"

    store = Store.open(db)
    stored = {o.run_id for o in store.history("load", "t", limit=100_000)}
    store.close()
    lost = [run_id for run_id in acked if run_id not in stored]
    assert lost == [], f"{len(lost)} acknowledged observations lost, e.g. {lost[:5]}"

    restarted = serve(db, tmp_path)
    try:
        request = urllib.request.Request(
            f"{restarted.url}/v1/tasks/load/t?limit=5000", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request) as response:
            assert len(json.load(response)["observations"]) >= len(acked)
    finally:
        restarted.stop()


def test_killing_the_service_mid_load_loses_no_acknowledged_observation_on_sqlite(tmp_path: Path) -> None:
    kill_mid_load(f"sqlite:///{tmp_path / 'control-room.db'}", tmp_path)


@pytest.mark.postgres
def test_killing_the_service_mid_load_loses_no_acknowledged_observation_on_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    kill_mid_load(fresh_postgres(postgres_url), tmp_path)
