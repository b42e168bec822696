"""``headrace compile`` / ``headrace validate`` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.argo import to_yaml
from pipelines.cli import app
from tests.argo.helpers import ROOT, compiled

BROKEN = """
from pipelines import Pipeline, Resources, Retry, step

@step
def load() -> int:
    return 1

with Pipeline("broken") as pipeline:
    load(retry=Retry(limit=-1), resources=Resources(memory="lots"))
    load(name="Second", after=["missing"])
"""


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture
def broken(tmp_path: Path) -> str:
    path = tmp_path / "broken_flow.py"
    path.write_text(BROKEN)
    return f"{path}:pipeline"


runner = CliRunner()


def test_compile_prints_the_workflow_yaml_on_stdout() -> None:
    result = runner.invoke(app, ["compile", "tests/argo/pipelines/small_dag.py:pipeline"])
    assert result.exit_code == 0, result.output
    assert result.stdout == to_yaml(compiled("small_dag"))


def test_compile_writes_pipeline_kind_yaml_into_the_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = runner.invoke(
        app, ["compile", "tests/argo/pipelines/cron_sized.py:pipeline", "--kind", "cron", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    written = out / "cron-sized.cron.yaml"
    assert f"wrote {written}" in result.stdout.replace("\n", "")
    assert yaml.safe_load(written.read_text())["kind"] == "CronWorkflow"
    assert written.read_text() == to_yaml(compiled("cron_sized", "cron"))


def test_compile_rejects_an_unknown_kind() -> None:
    result = runner.invoke(app, ["compile", "tests/argo/pipelines/small_dag.py:pipeline", "--kind", "job"])
    assert result.exit_code == 2
    assert "--kind 'job'" in result.stderr


def test_compile_of_a_cron_without_schedule_says_so_in_one_line() -> None:
    result = runner.invoke(app, ["compile", "tests/argo/pipelines/small_dag.py:pipeline", "--kind", "cron"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "pipeline small-dag: schedule is not set" in result.stderr


def test_validate_reports_a_valid_pipeline() -> None:
    result = runner.invoke(app, ["validate", "tests/argo/pipelines/cron_sized.py:pipeline"])
    assert result.exit_code == 0, result.output
    assert "pipeline cron-sized is valid: 3 tasks (1 sized), 0 3 * * *, 30 15 * * 1-5" in result.stdout


def test_validate_prints_every_problem_on_its_own_line_and_exits_2(broken: str) -> None:
    result = runner.invoke(app, ["validate", broken])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("error: pipeline broken, task ") for line in lines)
    assert any("retry.limit is -1" in line for line in lines)
    assert any("resources.memory 'lots'" in line for line in lines)
    assert any("task Second: name" in line for line in lines)
    assert any("after= names unknown task 'missing'" in line for line in lines)
    assert "Traceback" not in result.output


def test_compile_of_an_invalid_pipeline_prints_the_problems_not_yaml(broken: str) -> None:
    result = runner.invoke(app, ["compile", broken])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 4


def test_unknown_module_is_one_line_exit_2() -> None:
    result = runner.invoke(app, ["validate", "no/such/flow.py:pipeline"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: module no/such/flow.py: no such file or folder; check the path"


def test_console_script_compiles_validates_and_shows_its_version(broken: str) -> None:
    headrace = Path(sys.executable).parent / "headrace"
    compiled_run = subprocess.run(
        [str(headrace), "compile", "tests/argo/pipelines/fan_out_in.py:pipeline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert compiled_run.returncode == 0, compiled_run.stderr
    assert compiled_run.stdout == to_yaml(compiled("fan_out_in"))
    invalid = subprocess.run([str(headrace), "validate", broken], cwd=ROOT, capture_output=True, text=True)
    assert invalid.returncode == 2
    assert len(invalid.stderr.strip().splitlines()) == 4
    assert "Traceback" not in invalid.stderr
    version = subprocess.run([str(headrace), "--version"], capture_output=True, text=True)
    assert version.returncode == 0
    assert version.stdout.startswith("headrace ")


DIGIT_NAMED = """
from pipelines import Pipeline, step

@step
def extract() -> int:
    return 1

with Pipeline("digits") as pipeline:
    extract(name="2024-extract", sizing="auto")
"""


def test_validate_refuses_a_task_name_argo_would_refuse_in_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "digits_flow.py"
    path.write_text(DIGIT_NAMED)
    result = runner.invoke(app, ["validate", f"{path}:pipeline"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "task 2024-extract" in line and "start it with a letter" in line
