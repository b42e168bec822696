"""``python -m steps size``: the Argo sizing node writes the decision files and always exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.control_room.conftest import TOKEN, Served, free_port, serve

FLOW = """
from pipelines import Pipeline, Resources, step


@step
def extract():
    return {"rows": 1}


@step(resources=Resources(cpu="1", memory="2Gi"), sizing="auto", bytes_per_row=500, timeout="30m")
def featurize(data):
    return data


with Pipeline("nodeflow") as pipeline:
    featurize(data=extract())
"""

REF = json.dumps(
    {"uri": "file:///tmp/extract/result.parquet", "bytes": 3_000_000_000, "rows": 8_000_000, "format": "parquet"}
)


def run_node(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None, spec: str = "flow:pipeline"
) -> tuple[subprocess.CompletedProcess[str], Path]:
    (tmp_path / "flow.py").write_text(FLOW)
    outputs = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "steps",
        "size",
        spec,
        "featurize",
        "--run-id",
        "r1",
        "--outputs-dir",
        str(outputs),
        *extra,
    ]
    full_env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), **(env or {})}
    done = subprocess.run(command, cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=60)
    return done, outputs


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One control room service for the module's pods (a pod sizes only against a service)."""
    folder = tmp_path_factory.mktemp("service")
    running = serve(f"sqlite:///{folder / 'served.db'}", folder)
    yield {"HEADRACE_CONTROL_ROOM_URL": running.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN}
    running.stop()


@pytest.mark.integration
def test_sizing_node_writes_decision_pod_spec_patch_instance_type_and_count(
    tmp_path: Path, service: dict[str, str]
) -> None:
    done, out = run_node(tmp_path, "--input", f"extract.result={REF}", env=service)
    assert done.returncode == 0, done.stderr
    decision = json.loads((out / "decision").read_text())
    # declared 500 bytes/row x 8M rows + 256 MiB = 4.0 GiB; x1.3 -> the cheapest 8Gi pod shape
    assert decision["source"] == "policy" and decision["predicted_peak_memory_bytes"] == 500 * 8_000_000 + 256 * 2**20
    assert (out / "instance-type").read_text() == "pod-1-8Gi"
    assert (out / "instance-count").read_text() == "1"
    patch = json.loads((out / "pod-spec-patch").read_text())
    assert patch == {
        "containers": [
            {"name": "main", "resources": {"requests": {"cpu": "1", "memory": "8Gi"}, "limits": {"memory": "8Gi"}}}
        ]
    }
    assert "sizing nodeflow/featurize: pod-1-8Gi x1 - 2.8 GiB input; declared 500 bytes/row" in done.stderr


@pytest.mark.integration
def test_sizing_node_asks_the_service_when_one_is_configured(tmp_path: Path, served: Served) -> None:
    env = {"HEADRACE_CONTROL_ROOM_URL": served.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN}
    done, out = run_node(tmp_path, "--input", f"extract.result={REF}", env=env)
    assert done.returncode == 0, done.stderr
    import urllib.request

    request = urllib.request.Request(f"{served.url}/v1/runs/r1", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        run = json.load(response)
    assert run["decisions"][0]["instance_type"] == (out / "instance-type").read_text()
    assert run["decisions"][0]["request"]["deadline_seconds"] == 1800
    assert [e["kind"] for e in run["events"]] == ["sizing.decided"]


@pytest.mark.integration
def test_a_decision_through_the_sizing_node_records_the_run_date(tmp_path: Path, served: Served) -> None:
    """The page's date axis: Argo hands the node the run's run_date (a day, or the cron's
    scheduledTime); the decision carries it as the day, not the day it was decided."""
    import urllib.request

    env = {"HEADRACE_CONTROL_ROOM_URL": served.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN}
    for run_id, given in (("r-day", "2026-11-03"), ("r-cron", "2026-11-04T23:30:00Z")):
        done, _ = run_node(
            tmp_path, "--input", f"extract.result={REF}", "--run-date", given, "--run-id", run_id, env=env
        )
        assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for run_id, day in (("r-day", "2026-11-03"), ("r-cron", "2026-11-04")):
        with urllib.request.urlopen(
            urllib.request.Request(f"{served.url}/v1/runs/{run_id}", headers=headers)
        ) as answer:
            assert json.load(answer)["decisions"][0]["request"]["run_date"] == day
    with urllib.request.urlopen(urllib.request.Request(f"{served.url}/?token={TOKEN}")) as answer:
        page = answer.read().decode()
    assert 'data-run-date="2026-11-03"' in page and 'data-run-date="2026-11-04"' in page


def test_sizing_node_with_the_service_down_writes_the_declared_size_and_exits_0(tmp_path: Path) -> None:
    env = {"HEADRACE_CONTROL_ROOM_URL": f"http://127.0.0.1:{free_port()}"}
    done, out = run_node(tmp_path, env=env)
    assert done.returncode == 0
    assert json.loads((out / "decision").read_text())["source"] == "declared"
    assert json.loads((out / "pod-spec-patch").read_text())["containers"][0]["resources"]["requests"] == {
        "cpu": "1",
        "memory": "2Gi",
    }
    assert "unreachable" in done.stderr and "using the declared resources" in done.stderr


def test_a_pod_without_a_control_room_url_uses_its_declared_size_and_opens_no_database(tmp_path: Path) -> None:
    state = tmp_path / "state"
    done, out = run_node(tmp_path, "--input", f"extract.result={REF}", env={"HEADRACE_STATE_DIR": str(state)})
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "decision").read_text())["source"] == "declared"
    assert "no control room configured; using the declared resources" in done.stderr
    assert not list(tmp_path.rglob("*.db"))


def test_sizing_node_for_a_broken_pipeline_exits_0_with_empty_answers(tmp_path: Path) -> None:
    done, out = run_node(tmp_path, spec="nowhere:pipeline")
    assert done.returncode == 0
    assert (out / "decision").read_text() == "" and (out / "pod-spec-patch").read_text() == "{}"
    assert "cannot build the request" in done.stderr


@pytest.mark.integration
def test_sizing_node_passes_an_oom_retry_one_size_up(tmp_path: Path, service: dict[str, str]) -> None:
    done, out = run_node(
        tmp_path,
        "--input",
        f"extract.result={REF}",
        "--attempt",
        "2",
        "--previous-outcome",
        "oom",
        "--previous-instance-type",
        "pod-1-8Gi",
        env=service,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "pod-spec-patch").read_text())["containers"][0]["resources"]["limits"]["memory"] == "16Gi"


def test_fallback_patch_keeps_a_declared_memory_limit(tmp_path: Path) -> None:
    from steps.core.contract import SizingDecision, SizingTarget
    from steps.runtime.sizing_node import pod_spec_patch

    declared = {"cpu": "1", "memory": "2Gi", "memory_limit": "3Gi", "cpu_limit": "2"}
    fallback = SizingDecision(SizingTarget.POD, "pod-1-2Gi", cpu="1", memory="2Gi", source="declared")
    assert pod_spec_patch(fallback, declared) == {
        "containers": [
            {
                "name": "main",
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}},
            }
        ]
    }
    sized = SizingDecision(SizingTarget.POD, "pod-2-8Gi", cpu="2", memory="8Gi", source="policy")
    assert pod_spec_patch(sized, declared)["containers"][0]["resources"]["limits"] == {"memory": "8Gi"}
    assert pod_spec_patch(SizingDecision(SizingTarget.GLUE, "G.1X", 5)) == {}
