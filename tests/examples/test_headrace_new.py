"""``headrace new NAME``: a scaffolded pipeline package runs and compiles as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from tests.argo.checks import assert_valid_argo

CLI = [sys.executable, "-c", "from pipelines.cli import main; main()"]


def test_scaffolded_pipeline_runs_locally_with_the_real_runner(tmp_path: Path) -> None:
    created = subprocess.run([*CLI, "new", "daily-churn"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert sorted(p.name for p in (tmp_path / "daily_churn").iterdir()) == ["README.md", "__init__.py", "tasks.py"]
    assert "headrace run daily_churn:pipeline" in created.stdout

    ran = subprocess.run(
        [*CLI, "run", "daily_churn:pipeline", "-p", "run_date=2026-11-01", "-p", "rows=500"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "succeeded" in ran.stdout
    for task in ("extract", "features", "report"):
        assert task in ran.stdout
    assert "500 rows" in ran.stdout, ran.stdout


def test_scaffolded_pipeline_compiles_to_a_valid_cron_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["new", "nightly_scores"]).exit_code == 0
    result = runner.invoke(app, ["compile", "nightly_scores:pipeline", "--kind", "cron"])
    assert result.exit_code == 0, result.output
    cron = yaml.safe_load(result.stdout)
    assert cron["metadata"]["name"] == "nightly-scores"
    assert_valid_argo(cron)


def test_scaffolded_package_is_lint_and_format_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(app, ["new", "daily-churn"]).exit_code == 0
    ruff = str(Path(sys.executable).parent / "ruff")
    for command in (
        [ruff, "check", "--select", "E,F,W,I,B,UP", "daily_churn"],
        [ruff, "format", "--check", "daily_churn"],
    ):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("1st-flow", "must start with a letter"), ("my.flow", "must start with a letter"), ("steps", "shadow")],
)
def test_a_bad_name_is_refused_in_one_line_with_exit_2(
    name: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["new", name])
    assert result.exit_code == 2
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_package_is_not_overwritten_without_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "daily_churn").mkdir()
    (tmp_path / "daily_churn" / "tasks.py").write_text("# mine\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["new", "daily-churn"])
    assert refused.exit_code == 2
    assert "already exists" in refused.output and "--force" in refused.output
    assert (tmp_path / "daily_churn" / "tasks.py").read_text() == "# mine\n"
    assert runner.invoke(app, ["new", "daily-churn", "--force"]).exit_code == 0
    assert "def extract" in (tmp_path / "daily_churn" / "tasks.py").read_text()


def test_scaffold_readme_says_what_each_compile_kind_emits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["new", "daily-churn"]).exit_code == 0
    readme = (tmp_path / "daily_churn" / "README.md").read_text()
    for line in readme.splitlines():
        if line.startswith("headrace compile"):
            command, _, claim = line.partition("#")
            emitted = runner.invoke(app, command.split()[1:])
            assert emitted.exit_code == 0, emitted.output
            kind = yaml.safe_load(emitted.stdout)["kind"]
            assert re.search(rf"\b{kind}\b", claim), (
                f"{command.strip()} emits a {kind}, the README says: {claim.strip()}"
            )
