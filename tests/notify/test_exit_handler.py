"""The Argo exit handler: ``python -m steps exit-handler`` reports the run's end to a real control room."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from control_room.store import Store
from steps.core.contract import EventKind
from steps.runtime.exit_handler import build_event

from .slack_server import VALID_TOKEN, SlackServer

TOKEN = "exit-handler-test-token"
ROOT = Path(__file__).resolve().parents[2]

FAILURES = json.dumps(
    [
        {
            "displayName": "train(0)",
            "message": "OOMKilled (exit code 137)",
            "templateName": "train",
            "phase": "Failed",
            "podName": "recipes-abc12-train-1",
            "finishedAt": "2026-01-01T00:01:25Z",
        },
        {
            "displayName": "train(1)",
            "message": "Error (exit code 1)",
            "templateName": "train",
            "phase": "Failed",
            "podName": "recipes-abc12-train-2",
            "finishedAt": "2026-01-01T00:03:30Z",
        },
    ]
)


def test_final_event_names_the_last_failed_attempt_and_its_message() -> None:
    event = build_event(
        "recipes", "recipes-abc12", "Failed", "252.5", FAILURES, ui_url="https://argo", namespace="ml", now=5.0
    )

    assert (event.kind, event.task, event.attempt, event.reason) == (
        EventKind.RUN_FAILED,
        "train",
        2,
        "Error (exit code 1)",
    )
    assert (event.duration_seconds, event.url, event.source) == (
        252.5,
        "https://argo/workflows/ml/recipes-abc12",
        "exit-handler",
    )


def test_succeeded_run_and_unresolved_failures_placeholder_give_a_clean_success() -> None:
    event = build_event("recipes", "r1", "Succeeded", "12", "{{workflow.failures}}")

    assert (event.kind, event.task, event.reason, event.duration_seconds) == (EventKind.RUN_SUCCEEDED, None, "", 12.0)


def test_error_status_without_failures_is_a_failure_with_the_status_as_reason() -> None:
    event = build_event("recipes", "r1", "Error", "not-a-number", "")

    assert (event.kind, event.task, event.reason, event.duration_seconds) == (
        EventKind.RUN_FAILED,
        None,
        "workflow error",
        None,
    )


@dataclass
class ControlRoom:
    url: str
    store: Store


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "flow.py"
    path.write_text(
        "from pipelines import Pipeline, step\n\n"
        "@step\ndef train():\n    return {'ok': True}\n\n"
        "with Pipeline('recipes') as pipeline:\n    train()\n"
    )
    return path


@pytest.fixture
def control_room(tmp_path: Path, slack_server: SlackServer) -> Iterator[ControlRoom]:
    """H5's control room app, served by uvicorn on a free port, notifying a local Slack server."""
    import uvicorn

    from control_room.app import Tokens, create_app
    from control_room.catalog import load_catalog, load_rules
    from control_room.notifications.notifier import build_notifier
    from control_room.sizing import Policy
    from steps.core.settings import Settings
    from tests.conftest import free_port

    store = Store.open(f"sqlite:///{tmp_path / 'control-room.db'}")
    catalog = load_catalog()
    settings = Settings(
        state_dir=str(tmp_path / ".headrace"),
        slack_token=VALID_TOKEN,
        slack_api_url=slack_server.api_url,
        slack_channel="#ml-alerts",
    )
    notifier = build_notifier(settings, engine=store.engine)
    app = create_app(store, Policy(catalog, load_rules(None, catalog)), tokens=Tokens([TOKEN]), notifier=notifier)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield ControlRoom(f"http://127.0.0.1:{port}", store)
    finally:
        server.should_exit = True
        thread.join(10)
        notifier.close()
        store.close()


def run_exit_handler(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "steps", "exit-handler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )


@pytest.mark.integration
def test_failed_workflow_is_closed_in_the_control_room_and_posted_to_slack(
    control_room: ControlRoom, pipeline_file: Path, slack_server: SlackServer
) -> None:
    from pipelines.argo.commands import exit_handler_args

    # Exactly the argv the compiler puts in the workflow's onExit template, as Argo fills it in.
    argo_values = {
        "{{workflow.name}}": "recipes-abc12",
        "{{workflow.status}}": "Failed",
        "{{workflow.duration}}": "252.000000",
        "{{workflow.failures}}": FAILURES,
    }
    argv = [argo_values.get(arg, arg) for arg in exit_handler_args(f"{pipeline_file}:pipeline")]
    assert argv[0] == "exit-handler"
    result = run_exit_handler(
        *argv[1:], env={"HEADRACE_CONTROL_ROOM_URL": control_room.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN}
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "exit-handler: recipes recipes-abc12 run.failed (train: Error (exit code 1))"
    run = control_room.store.run("recipes-abc12")
    assert run is not None and run["pipeline"] == "recipes" and run["status"] == "failed"
    stored = run["events"]
    assert [(e["kind"], e["task"], e["attempt"], e["reason"], e["source"]) for e in stored] == [
        ("run.failed", "train", 2, "Error (exit code 1)", "exit-handler")
    ]
    # The control room's notifier queued the Slack messages; its background drain sends them.
    deadline = time.monotonic() + 10
    while len(slack_server.state.posted()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    texts = [p["text"] for p in slack_server.state.posted()]
    assert texts == [
        "recipes run recipes-abc12 failed in 4m 12s: train — Error (exit code 1)",
        ":x: run failed: `train` failed (attempt 2): Error (exit code 1)",
    ]


@pytest.mark.integration
def test_unreachable_control_room_never_fails_the_workflow(pipeline_file: Path) -> None:
    from tests.conftest import free_port

    result = run_exit_handler(
        f"{pipeline_file}:pipeline",
        "--run-id",
        "recipes-abc12",
        "--status",
        "Succeeded",
        "--duration",
        "10",
        env={"HEADRACE_CONTROL_ROOM_URL": f"http://127.0.0.1:{free_port()}"},
    )

    assert result.returncode == 0
    assert "is unreachable" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.integration
def test_pipeline_module_that_no_longer_imports_is_reported_under_the_spec_name(control_room: ControlRoom) -> None:
    result = run_exit_handler(
        "no_such_module_xyz:recipes",
        "--run-id",
        "recipes-zz",
        "--status",
        "Succeeded",
        "--duration",
        "3",
        env={"HEADRACE_CONTROL_ROOM_URL": control_room.url, "HEADRACE_CONTROL_ROOM_TOKEN": TOKEN},
    )

    assert result.returncode == 0
    assert "warning: exit-handler: cannot load no_such_module_xyz:recipes" in result.stderr
    run = control_room.store.run("recipes-zz")
    assert run is not None and run["pipeline"] == "recipes" and run["status"] == "succeeded"


#: ``--failures`` exactly as Argo's controller v4.0.5 passed it to the exit handler for a run whose
#: task ``late`` passed its deadline (read from the pod's args in the cluster tests): the list is a
#: JSON string, and the workflow's root node is listed too, finishing last.
ARGO_V4_FAILURES = (
    '"[{\\"displayName\\":\\"cluster-timeout-rrfh5\\",\\"message\\":\\"\\",\\"templateName\\":\\"headrace-dag\\",'
    '\\"phase\\":\\"Failed\\",\\"podName\\":\\"cluster-timeout-rrfh5\\",\\"finishedAt\\":\\"2026-12-02T15:26:16Z\\"},'
    '{\\"displayName\\":\\"late\\",\\"message\\":\\"Pod was active on the node longer than the specified deadline\\",'
    '\\"templateName\\":\\"late\\",\\"phase\\":\\"Failed\\",\\"podName\\":\\"cluster-timeout-rrfh5-late-2488592719\\",'
    '\\"finishedAt\\":\\"2026-12-02T15:26:15Z\\"}]"'
)


def test_failures_as_the_real_controller_passes_them_name_the_task_and_its_reason() -> None:
    event = build_event("cluster-timeout", "cluster-timeout-rrfh5", "Failed", "4.788005", ARGO_V4_FAILURES)

    assert (event.kind, event.task, event.reason) == (
        EventKind.RUN_FAILED,
        "late",
        "Pod was active on the node longer than the specified deadline",
    )
