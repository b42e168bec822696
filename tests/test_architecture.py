"""Dependency rules kept as code: the import-linter contracts, and no Hera where start-up counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TRIVIAL_FLOW = """
from pipelines import Pipeline, step

@step
def hello(day: str) -> dict:
    return {"day": day}

with Pipeline("trivial") as pipeline:
    hello(day=pipeline.run_date)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


#: Runs a command as ``python -m`` would, then writes every module it imported to MODULES_FILE.
PROBE = """
import atexit, os, runpy, sys
def dump():
    with open(os.environ["MODULES_FILE"], "w") as handle:
        handle.write("\\n".join(sorted(sys.modules)))
atexit.register(dump)
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    exec(sys.argv[2])
"""


def _modules_after(args: list[str], cwd: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run ``python <args>`` under the probe; the process result and the modules it imported."""
    listing = tmp_path / "modules.txt"
    env = {**_env(), "MODULES_FILE": str(listing), "HEADRACE_STATE_DIR": str(tmp_path / ".headrace")}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, env=env)
    return result, set(listing.read_text().split()) if listing.exists() else set()


def _hera(modules: set[str]) -> set[str]:
    return {name for name in modules if name == "hera" or name.startswith("hera.")}


def test_import_linter_contracts_are_kept() -> None:
    result = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_importing_the_dsl_does_not_import_hera(tmp_path: Path) -> None:
    result, modules = _modules_after(["-c", "import pipelines"], ROOT, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pipelines.graph" in modules
    assert _hera(modules) == set()


def test_running_a_trivial_task_in_the_pod_entrypoint_does_not_import_hera(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(TRIVIAL_FLOW)
    command = ["-m", "steps", "run", "flow:pipeline", "hello", "--run-id", "r1", "-p", "run_date=2026-11-01"]
    result, modules = _modules_after([*command, "--outputs-dir", str(tmp_path / "out")], tmp_path, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "result").exists()
    assert {"steps.runtime.run", "flow"} <= modules
    assert _hera(modules) == set()


def test_hera_loads_only_when_the_compiler_is_used(tmp_path: Path) -> None:
    result, modules = _modules_after(["-c", "import pipelines.argo"], ROOT, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pipelines.argo" in modules
    assert _hera(modules) == set()
    result, modules = _modules_after(["-c", "from pipelines.argo import compile_pipeline"], ROOT, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "hera.workflows" in modules
