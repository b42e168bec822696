"""The served control room keeps its start-up heap out of garbage collections and shows the pauses."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from control_room.heap import CollectorPauses
from tests.control_room.conftest import TOKEN, Served


def metric(text: str, name: str) -> float:
    """The value of one sample line ``name value`` of a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} is not in the exposition:\n{text}")


def test_collector_pauses_count_each_generations_collections() -> None:
    pauses = CollectorPauses().install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert pauses.collections[0] >= 1 and pauses.collections[2] >= 1
    assert pauses.seconds[2] > 0 and pauses.longest[2] <= pauses.seconds[2]
    text = pauses.exposition()
    assert metric(text, 'headrace_control_room_gc_collections_total{generation="2"}') == pauses.collections[2]
    assert "# TYPE headrace_control_room_gc_pause_seconds_total counter" in text


def test_uninstalled_collector_pauses_stop_counting() -> None:
    pauses = CollectorPauses().install()
    pauses.uninstall()
    gc.collect(2)
    assert pauses.collections == [0, 0, 0]


def test_the_served_app_leaves_its_start_up_objects_out_of_full_collections(tmp_path: Path) -> None:
    # A fresh interpreter: what a `control-room serve` worker holds after building its app.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env.update(HEADRACE_STATE_DIR=str(tmp_path), HEADRACE_CONFIG=str(tmp_path / "none.toml"))
    probe = (
        "import gc; from control_room.app import app_from_environment; app_from_environment(); "
        "print(gc.get_freeze_count(), len(gc.get_objects()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        check=True,
    )
    frozen, visited = (int(n) for n in result.stdout.split())
    assert frozen > 20_000, result.stdout
    assert visited * 10 < frozen, f"a full collection still visits {visited} objects ({frozen} frozen)"


@pytest.mark.integration
def test_metrics_of_a_served_control_room_show_collection_pauses(served: Served) -> None:
    request = urllib.request.Request(f"{served.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    assert metric(text, "headrace_control_room_gc_frozen_objects") > 20_000
    for generation in range(3):
        assert metric(text, f'headrace_control_room_gc_pause_seconds_total{{generation="{generation}"}}') >= 0
