"""The client side: HTTP against a real service process, the embedded room, and the fallback that
never fails a pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from control_room.embedded import EmbeddedControlRoom, connect
from control_room.store import Store
from steps.core.contract import EventKind, Observation, Outcome, RunEvent, SizingRequest, SizingTarget
from steps.core.errors import ConfigError, UserError
from steps.core.settings import load_settings
from steps.runtime.client import HttpControlRoom, read_token, size_with_fallback
from tests.control_room.conftest import TOKEN, Served, free_port

REQUEST = SizingRequest(
    "recipes",
    "train",
    "r1",
    target=SizingTarget.POD,
    input_bytes=2_000_000_000,
    declared={"cpu": "2", "memory": "6Gi"},
)


@pytest.mark.integration
def test_http_client_sizes_observes_and_emits_against_the_service(served: Served) -> None:
    room = HttpControlRoom(served.url, TOKEN)
    decision = room.size(REQUEST)
    assert decision.source == "rules" and decision.instance_type == "pod-2-16Gi"
    room.observe(
        Observation(
            "recipes", "train", "r1", 1, Outcome.SUCCEEDED, input_bytes=2_000_000_000, peak_memory_bytes=5 * 2**30
        )
    )
    room.emit(RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r1", at=1.0))
    import urllib.request

    request = urllib.request.Request(f"{served.url}/v1/runs/r1", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request) as response:
        run = json.load(response)
    assert run["status"] == "succeeded"
    assert run["observations"][0]["peak_memory_bytes"] == 5 * 2**30
    assert run["decisions"][0]["instance_type"] == "pod-2-16Gi"


@pytest.mark.integration
def test_a_wrong_token_is_refused_and_sizing_falls_back_to_declared(served: Served) -> None:
    room = HttpControlRoom(served.url, "wrong")
    with pytest.raises(UserError, match="HTTP 401"):
        room.size(REQUEST)
    lines: list[str] = []
    decision = size_with_fallback(room, REQUEST, lines.append)
    assert decision.source == "declared" and (decision.cpu, decision.memory) == ("2", "6Gi")
    assert "HTTP 401" in decision.reason and "using the declared resources" in lines[0]


def test_service_down_falls_back_to_the_declared_resources_and_says_so() -> None:
    room = HttpControlRoom(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)
    lines: list[str] = []
    decision = size_with_fallback(room, REQUEST, lines.append)
    assert decision.source == "declared"
    assert (decision.instance_type, decision.cpu, decision.memory) == ("pod-2-6Gi", "2", "6Gi")
    assert "is unreachable" in decision.reason and "using the declared resources" in decision.reason
    assert lines == [f"sizing recipes/train: pod-2-6Gi x1 - {decision.reason}"]


def test_observe_and_emit_never_raise_when_the_service_is_down(caplog: pytest.LogCaptureFixture) -> None:
    room = HttpControlRoom(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=1, retries=2)
    room.observe(Observation("recipes", "train", "r1", 1, Outcome.SUCCEEDED))
    room.emit(RunEvent(EventKind.RUN_STARTED, "recipes", "r1"))
    assert "gave up after 2 tries" in caplog.text


def test_fallback_for_sagemaker_keeps_the_declared_instance() -> None:
    request = SizingRequest(
        "recipes",
        "train",
        "r1",
        target=SizingTarget.SAGEMAKER,
        declared={"instance_type": "ml.g5.xlarge", "instance_count": 2},
    )
    decision = size_with_fallback(
        HttpControlRoom(f"http://127.0.0.1:{free_port()}", timeout=1), request, lambda _: None
    )
    assert (decision.instance_type, decision.instance_count, decision.target) == ("ml.g5.xlarge", 2, "sagemaker")


def test_connect_without_a_url_is_the_embedded_room_on_the_state_folders_sqlite(isolated_headrace: Path) -> None:
    seen: list[RunEvent] = []
    room = connect(load_settings(), notifier=seen.append)
    assert isinstance(room, EmbeddedControlRoom)
    decision = room.size(REQUEST)
    room.observe(Observation("recipes", "train", "r1", 1, Outcome.SUCCEEDED, input_bytes=1, peak_memory_bytes=1))
    room.emit(RunEvent(EventKind.RUN_STARTED, "recipes", "r1"))
    room.close()
    assert [e.kind for e in seen] == ["run.started"]
    store = Store.open(None, isolated_headrace)
    run = store.run("r1")
    assert run is not None and run["decisions"][0]["instance_type"] == decision.instance_type
    assert len(run["observations"]) == 1 and run["events"][0]["kind"] == "run.started"
    store.close()


def test_connect_with_a_url_is_http_with_the_token_from_the_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-secret\n")
    settings = load_settings({"control_room_url": "http://control-room:8080/", "control_room_token_file": str(secret)})
    room = connect(settings)
    assert isinstance(room, HttpControlRoom)
    assert (room.url, room.token) == ("http://control-room:8080", "from-secret")


def test_an_unreadable_token_file_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    settings = load_settings({"control_room_token_file": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"control_room_token_file .*missing: cannot read it"):
        read_token(settings)


def test_the_client_module_stays_light_for_the_in_pod_entrypoint() -> None:
    code = (
        "import sys, steps.runtime.client;"
        "heavy = [m for m in ('fastapi', 'sqlalchemy', 'httpx', 'pydantic', 'control_room.store') if m in sys.modules];"
        "print(heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"
