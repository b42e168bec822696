"""Retries with backoff, ``activeDeadlineSeconds`` and the exit handler's report to the control
room, as the real controller runs them; the control room, configured with a Slack bot token and
channel, posts the run's final status to Slack (the local stand-in, through slack-sdk)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import SLACK_CHANNEL, invoke
from tests.cluster.control_plane import Cluster
from tests.cluster.test_runs import submitted, wait_for
from tests.notify.slack_server import SlackServer


def task_pods(run: dict[str, Any], task: str) -> list[dict[str, Any]]:
    nodes = [
        n for n in run["status"]["nodes"].values() if n.get("displayName", "").startswith(task) and n["type"] == "Pod"
    ]
    return sorted(nodes, key=lambda n: n["startedAt"])


def moment(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def control_room_run(cluster: Cluster, run: str) -> dict[str, Any]:
    response = httpx.get(f"{cluster.control_room_url}/v1/runs/{run}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def slack_run_message(slack: SlackServer, run: str, status: str, timeout: float = 60) -> str:
    """The text of the run's channel message in Slack once it shows ``status``: the control room
    posts it when the run starts and updates it from its outbox, so it may lag the run's end."""
    deadline = time.monotonic() + timeout
    while True:
        with slack.state.lock:
            texts = [
                str(m["text"])
                for m in slack.state.stored
                if m["channel"] == slack.state.channel_ids[SLACK_CHANNEL] and not m["thread_ts"]
            ]
        mine = [t for t in texts if f" run {run} " in f"{t} "]
        final = [t for t in mine if f" run {run} {status}" in t]
        if final:
            return final[0]
        assert time.monotonic() < deadline, f"no Slack message says run {run} {status}; its messages: {mine}"
        time.sleep(0.5)


def test_failed_attempt_is_retried_after_its_backoff_and_the_exit_handler_reports_success(
    on_cluster: Cluster, cli: CliRunner, tmp_path: Path, cluster_slack: SlackServer
) -> None:
    code, out = invoke(cli, "submit", "cluster_limits:retries", "-p", f"marker={tmp_path / 'marker'}")
    assert code == 0, out
    name = submitted(out)
    run = wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"), timeout=180)
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    first, second = task_pods(run, "flaky")
    assert (first["phase"], second["phase"]) == ("Failed", "Succeeded")
    waited = (moment(second["startedAt"]) - moment(first["finishedAt"])).total_seconds()
    assert waited >= 3 - 1  # Backoff(duration=3); timestamps have one-second resolution

    exit_node = next(n for n in run["status"]["nodes"].values() if n.get("displayName") == f"{name}.onExit")
    assert exit_node["phase"] == "Succeeded"
    recorded = control_room_run(on_cluster, name)
    assert "succeeded" in str(recorded).lower(), recorded
    assert slack_run_message(cluster_slack, name, "succeeded").startswith("cluster-retries run ")


def test_task_past_its_timeout_fails_the_run_and_the_exit_handler_reports_the_failure(
    on_cluster: Cluster, cli: CliRunner, cluster_slack: SlackServer
) -> None:
    code, out = invoke(cli, "submit", "cluster_limits:timeout", "-p", "seconds=60")
    assert code == 0, out
    name = submitted(out)
    run = wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"), timeout=120)
    assert run["status"]["phase"] == "Failed"
    (late,) = task_pods(run, "late")
    assert late["phase"] in ("Failed", "Error")
    assert "deadline" in late.get("message", "").lower(), late
    assert (moment(late["finishedAt"]) - moment(late["startedAt"])).total_seconds() < 30
    recorded = control_room_run(on_cluster, name)
    assert "failed" in str(recorded).lower(), recorded
    deadline = time.monotonic() + 30
    while not any(e["source"] == "exit-handler" for e in recorded["events"]) and time.monotonic() < deadline:
        time.sleep(0.5)
        recorded = control_room_run(on_cluster, name)
    (reported,) = [e for e in recorded["events"] if e["source"] == "exit-handler"]
    assert (reported["kind"], reported["task"]) == ("run.failed", "late"), reported
    assert "deadline" in reported["reason"], reported  # Argo's own words for the node that failed
    message = slack_run_message(cluster_slack, name, "failed")
    assert "late" in message, message  # names the task that failed the run


def test_logs_of_one_attempt_are_read_from_that_attempts_pod(
    on_cluster: Cluster, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = invoke(cli, "submit", "cluster_limits:retries", "-p", f"marker={tmp_path / 'marker'}")
    assert code == 0, out
    name = submitted(out)
    assert wait_for(on_cluster, name, ("Succeeded", "Failed", "Error"), timeout=180)["status"]["phase"] == "Succeeded"
    for transport in ("argo", "k8s"):
        monkeypatch.setenv("HEADRACE_ARGO_TRANSPORT", transport)
        code, out = invoke(cli, "logs", name, "flaky", "--attempt", "1")
        assert code == 0 and "failing the first time" in out and "passing" not in out, (transport, out)
        code, out = invoke(cli, "logs", name, "flaky", "--attempt", "2")
        assert code == 0 and "passing the second time" in out and "failing" not in out, (transport, out)
        code, out = invoke(cli, "logs", name, "flaky")
        assert code == 0 and "failing the first time" in out and "passing the second time" in out, (transport, out)
        code, out = invoke(cli, "logs", name, "flaky", "--attempt", "3")
        assert code != 0 and "Traceback" not in out, (transport, out)
        assert "--attempt 3" in out and "its attempts are 1, 2" in out and len(out.strip().splitlines()) == 1, out
