"""``headrace compile examples/recipe_stream:pipeline``: the same pipeline as Argo YAML, all three kinds,
checked the way the compiler's own tests check (Hera round trip and Argo's strict JSON schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from tests.argo.checks import assert_valid_argo

ROOT = Path(__file__).resolve().parents[2]
SPEC = "examples/recipe_stream:pipeline"
TASKS = [
    "sample-data",
    "extract-events",
    "extract-items",
    "train",
    "score",
    "class-mix",
    "items-cook",
    "items-save",
    "items-skip",
    "shopping-lists",
    "reminders",
    "refresh",
    "summary",
]
SIZED = ("shopping-lists", "reminders", "refresh")


def _compile(kind: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["compile", SPEC, "--kind", kind])
    assert result.exit_code == 0, result.output
    obj = yaml.safe_load(result.stdout)
    assert isinstance(obj, dict)
    return obj


def _dag(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]
    entry = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
    return {task["name"]: task for task in entry["dag"]["tasks"]}


@pytest.mark.parametrize("kind", ["workflow", "template", "cron"])
def test_every_kind_compiles_to_yaml_hera_and_argo_accept(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    obj = _compile(kind, monkeypatch)
    assert obj["kind"] == {"workflow": "Workflow", "template": "WorkflowTemplate", "cron": "CronWorkflow"}[kind]
    assert_valid_argo(obj)


def test_the_workflow_runs_every_task_through_the_entrypoint_with_a_sizing_node_per_follow_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    obj = _compile("workflow", monkeypatch)
    dag = _dag(obj)
    assert set(TASKS) <= set(dag)
    templates = {t["name"]: t for t in obj["spec"]["templates"]}
    # Each sized follow-up runs as a nested DAG, its sizing node then itself, retried as a whole.
    assert {name for name in dag if dag[name]["template"].startswith("headrace-sized-")} == set(SIZED)
    for name in TASKS:
        args = templates[name]["container"]["args"]
        # The pod imports the pipeline by module name from the image's Python path.
        assert args[:3] == ["run", "examples.recipe_stream:pipeline", name], args
    for name in SIZED:
        nested = {t["name"]: t for t in templates[f"headrace-sized-{name}"]["dag"]["tasks"]}
        assert list(nested) == [f"size-{name}", name]
        assert _depends_on(nested[name]) == {f"size-{name}"}
        assert templates[name]["podSpecPatch"]
    for outcome, follow_up in zip(("cook", "save", "skip"), SIZED, strict=True):
        assert _depends_on(dag[f"items-{outcome}"]) == {"score"}
        assert f"items-{outcome}" in _depends_on(dag[follow_up])
    assert {"class-mix", *SIZED} <= _depends_on(dag["summary"])
    params = {p["name"] for p in obj["spec"]["arguments"]["parameters"]}
    assert params == {"run_date", "sample_rows", "sample_seed", "retrain", "train_weekday"}


def _depends_on(task: dict[str, Any]) -> set[str]:
    if "dependencies" in task:
        return set(task["dependencies"])
    depends = str(task.get("depends", ""))
    return {part.strip().split(".")[0] for part in depends.replace("&&", " ").replace("||", " ").split() if part}


def test_the_cron_workflow_runs_daily_at_three_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _compile("cron", monkeypatch)["spec"]
    assert spec["schedules"] == ["0 3 * * *"]
    assert spec["timezone"] == "Asia/Tokyo"
    assert spec["concurrencyPolicy"] == "Forbid"
