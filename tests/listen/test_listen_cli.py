"""``headrace listen`` refuses bad input in one line with exit code 2, before touching a broker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


def listen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from pipelines.cli import main; main()", "listen", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            'with Pipeline("plain") as pipeline:\n    work()\n',
            "error: pipeline plain: has no triggers; add triggers=[Queue(...)] or listen to another",
        ),
        (
            'with Pipeline("later", triggers=[After("first")]) as pipeline:\n    work()\n',
            "error: pipeline later, trigger after-first: completions are read from HEADRACE_EVENTS_URL, which is not set; set it to amqp://host:5672/vhost",
        ),
        (
            'with Pipeline("bad", triggers=[Queue("amqp://mq/", queue="q", params={"day": "$.date"})]) as pipeline:\n    work()\n',
            "error: pipeline bad, trigger amqp-q: params maps unknown parameter 'day'; parameters are run_date",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    flow: Callable[[str], str], tmp_path: Path, body: str, expected: str
) -> None:
    spec = flow("@step\ndef work() -> int:\n    return 1\n\n" + body)
    result = listen(spec, cwd=tmp_path)
    assert result.returncode == 2
    assert [line for line in result.stderr.splitlines() if line.strip()] == [expected]


def test_concurrency_must_be_positive(flow: Callable[[str], str], tmp_path: Path) -> None:
    spec = flow(
        '@step\ndef work() -> int:\n    return 1\n\nwith Pipeline("p", triggers=[Queue("amqp://mq/", queue="q")]) as pipeline:\n    work()\n'
    )
    result = listen(spec, "--concurrency", "0", cwd=tmp_path)
    assert (result.returncode, result.stderr.strip()) == (2, "error: --concurrency: must be 1 or more")
