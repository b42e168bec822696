"""The notifier's choice of outputs, and the console output of the local profile."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from rich.console import Console

from control_room.notifications.notifier import build_notifier
from steps.core.contract import EventKind, RunEvent
from steps.core.settings import Settings


def test_without_tokens_events_print_one_line_each_on_the_console(tmp_path: Path) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None)
    notifier = build_notifier(Settings(state_dir=str(tmp_path)), console=console, environ={})
    assert notifier.slack is None and notifier.metrics is None

    notifier(RunEvent(EventKind.RUN_STARTED, "recipes", "r1"))
    notifier(RunEvent(EventKind.TASK_STARTED, "recipes", "r1", task="extract", attempt=1))
    notifier(
        RunEvent(
            EventKind.TASK_SUCCEEDED,
            "recipes",
            "r1",
            task="extract",
            attempt=1,
            duration_seconds=1.5,
            output_bytes=2_500,
            output_rows=100,
            sizing={"target": "pod", "cpu": "2", "memory": "4Gi"},
        )
    )
    notifier(RunEvent(EventKind.TASK_RETRYING, "recipes", "r1", task="train", attempt=2, reason="OOMKilled"))
    notifier(RunEvent(EventKind.RUN_FAILED, "recipes", "r1", task="train", reason="exit code 1 [bold]x[/]"))

    assert buffer.getvalue().splitlines() == [
        "▶ run.started recipes/r1",
        "✔ task.succeeded recipes/r1 extract — 1.5s, 2.4 KiB, 100 rows, 2 cpu / 4Gi",
        "↻ task.retrying recipes/r1 train — attempt 2, OOMKilled",
        "✘ run.failed recipes/r1 train — exit code 1 [bold]x[/]",
    ]


def test_default_is_the_console_and_quiet_turns_it_off(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))

    assert build_notifier(settings, environ={}).console is not None
    assert build_notifier(settings, environ={}, quiet=True).console is None


def test_datadog_is_chosen_by_the_standard_agent_variable_or_the_setting(tmp_path: Path) -> None:
    settings = Settings(state_dir=str(tmp_path))

    with_agent = build_notifier(settings, environ={"DD_AGENT_HOST": "127.0.0.1", "DD_DOGSTATSD_PORT": "8125"})
    assert with_agent.metrics is not None and with_agent.console is None
    with_agent.close()
    assert build_notifier(settings.replace(datadog="false"), environ={"DD_AGENT_HOST": "x"}).metrics is None


def test_a_failing_output_never_raises_into_the_caller_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def print(self, *args: object, **kwargs: object) -> None:
            raise OSError("terminal gone")

    notifier = build_notifier(Settings(state_dir=str(tmp_path)), console=Broken(), environ={})  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="headrace.notify"):
        notifier(RunEvent(EventKind.RUN_STARTED, "recipes", "r1"))
        notifier(RunEvent(EventKind.RUN_SUCCEEDED, "recipes", "r1"))

    assert [r.getMessage() for r in caplog.records] == [
        "notify: console failed for run.started of recipes/r1: terminal gone"
    ]
