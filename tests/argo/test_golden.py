"""Compiler output pinned by golden YAML files, and every example checked against Argo.

Goldens change only on purpose: ``HEADRACE_UPDATE_GOLDEN=1 pytest tests/argo/test_golden.py``
rewrites them (never in CI); review the diff like code.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.argo import KINDS, compile_pipeline, to_yaml
from pipelines.graph import Pipeline
from steps.core.settings import Settings
from steps.runtime.loader import load_object
from tests.argo.checks import assert_valid_argo, hera_round_trip, reference_errors, schema_errors
from tests.argo.helpers import ROOT, compiled

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("HEADRACE_UPDATE_GOLDEN") == "1"
CASES = [
    ("small_dag", "workflow"),
    ("fan_out_in", "workflow"),
    ("cron_sized", "cron"),
    ("cron_sized", "template"),
]


def _example_specs() -> list[str]:
    """Every pipeline under ``tests/argo/pipelines`` and ``examples/`` (the reference pipelines):
    a module, or a package's ``pipeline.py`` or ``__init__.py``, that builds a ``Pipeline(``."""
    specs = [
        f"tests/argo/pipelines/{path.name}:pipeline"
        for path in sorted((ROOT / "tests/argo/pipelines").glob("[!_]*.py"))
    ]
    for path in sorted((ROOT / "examples").glob("*")):
        candidates = [path / "pipeline.py", path / "__init__.py"] if path.is_dir() else [path]
        for source in candidates:
            if source.suffix == ".py" and source.is_file() and "Pipeline(" in source.read_text():
                module = path if source.name == "__init__.py" else source
                specs += [f"{module.relative_to(ROOT)}:{name}" for name in _pipelines_in(module)]
                break
    return specs


def _pipelines_in(module: Path) -> list[str]:
    """The names of the pipelines a module defines at its top level (a module may hold several)."""
    from pipelines import Pipeline
    from steps.runtime.loader import import_module

    loaded = import_module(str(module))
    return [name for name, value in vars(loaded).items() if isinstance(value, Pipeline)]


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize(("name", "kind"), CASES, ids=[f"{n}.{k}" for n, k in CASES])
def test_compiled_yaml_matches_golden_file(name: str, kind: Any) -> None:
    text = to_yaml(compiled(name, kind))
    golden = GOLDEN / f"{name}.{kind}.yaml"
    if UPDATE:
        assert not os.environ.get("CI"), "goldens are never regenerated in CI"
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"{golden} is missing; create it with HEADRACE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), f"{golden.name} differs; if intended, rerun with HEADRACE_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("spec", _example_specs())
def test_every_example_compiles_to_objects_hera_and_argo_accept(spec: str) -> None:
    pipeline = load_object(spec)
    assert isinstance(pipeline, Pipeline)
    for kind in KINDS:
        if kind == "cron" and pipeline.schedule is None:
            continue
        obj = compile_pipeline(pipeline, spec=spec, kind=kind, settings=Settings())
        assert_valid_argo(obj)


def test_reference_example_is_among_the_checked_pipelines() -> None:
    package = ROOT / "examples" / "recipe_stream"
    if any("with Pipeline(" in path.read_text() for path in package.glob("*.py")):
        assert any(spec.startswith("examples/recipe_stream") for spec in _example_specs())


def test_a_misspelled_field_passes_hera_but_fails_the_strict_schema() -> None:
    obj = compiled("small_dag")
    broken = {**obj, "spec": {**obj["spec"], "ttlStrategy": {"secondsAfterSucess": 5}}}
    assert hera_round_trip(broken)["spec"]["ttlStrategy"] == {}
    assert schema_errors(broken) != []


def test_reference_check_catches_wiring_argo_would_reject() -> None:
    obj = compiled("cron_sized", "template")
    assert reference_errors(obj) == []

    no_wait = copy.deepcopy(obj)
    for task in no_wait["spec"]["templates"][0]["dag"]["tasks"]:
        if task["name"] == "score":
            task["dependencies"] = ["extract"]
    assert reference_errors(no_wait) == ["dag headrace-dag, task score: reads train, which it does not wait for"]

    missing_input = copy.deepcopy(obj)
    for item in missing_input["spec"]["templates"]:
        if item["name"] == "train":
            item["inputs"]["parameters"] = [p for p in item["inputs"]["parameters"] if p["name"] != "sizing"]
    errors = reference_errors(missing_input)
    assert "template train: {{inputs.parameters.sizing}} is not an input" in errors

    no_retry = copy.deepcopy(obj)
    for item in no_retry["spec"]["templates"]:
        item.pop("retryStrategy", None)
    errors = reference_errors(no_retry)
    assert "template extract: uses retries without a retryStrategy" in errors
    assert "dag headrace-sized-train, task train: uses retries without a retryStrategy" in errors

    wrong_output = copy.deepcopy(obj)
    for item in wrong_output["spec"]["templates"]:
        if item["name"] == "headrace-sized-train":
            item["outputs"]["parameters"][0]["valueFrom"]["parameter"] = "{{tasks.size-trian.outputs.parameters.model}}"
    assert reference_errors(wrong_output) == [
        "dag headrace-sized-train: output result reads '{{tasks.size-trian.outputs.parameters.model}}', "
        "no output of its tasks"
    ]


def test_output_is_byte_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    script = (
        "import sys; from argo.helpers import compiled; from pipelines.argo import to_yaml;"
        "sys.stdout.write(to_yaml(compiled('cron_sized', 'template')))"
    )
    outputs = []
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == to_yaml(compiled("cron_sized", "template"))
