"""What the Argo compiler emits for each pipeline feature, read from the compiled object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines import Pipeline, step
from pipelines.argo import build, compile_pipeline, image_spec
from pipelines.graph import DEFAULT_IMAGE, PipelineInvalid
from steps.core.errors import UserError
from steps.core.settings import Settings
from tests.argo.helpers import ROOT, args, arguments, compiled, dag_task, load, template


@pytest.fixture(autouse=True)
def _in_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_each_task_runs_the_entrypoint_with_run_id_params_inputs_outputs_dir_and_reports() -> None:
    obj = compiled("small_dag")
    assert template(obj, "clean")["container"]["command"] == ["python", "-m", "steps"]
    assert args(obj, "clean") == [
        "run",
        "tests.argo.pipelines.small_dag:pipeline",
        "clean",
        "--run-id",
        "{{workflow.name}}",
        "-p",
        "run_date={{inputs.parameters.run_date}}",
        "--input",
        "extract.result={{inputs.parameters.extract-result}}",
        "--outputs-dir",
        "/tmp/headrace/outputs",
        "--report",
    ]


def test_outputs_come_back_as_parameters_read_from_the_entrypoint_files() -> None:
    outputs = template(compiled("small_dag"), "report")["outputs"]["parameters"]
    assert [(p["name"], p["valueFrom"]["path"]) for p in outputs] == [
        ("summary", "/tmp/headrace/outputs/summary"),
        ("summary-bytes", "/tmp/headrace/outputs/summary-bytes"),
        ("summary-rows", "/tmp/headrace/outputs/summary-rows"),
        ("details", "/tmp/headrace/outputs/details"),
        ("details-bytes", "/tmp/headrace/outputs/details-bytes"),
        ("details-rows", "/tmp/headrace/outputs/details-rows"),
    ]


def test_downstream_tasks_receive_upstream_outputs_and_wait_for_them() -> None:
    obj = compiled("fan_out_in")
    join = dag_task(obj, "join")
    assert join["dependencies"] == ["features-left", "features-middle", "features-right"]
    assert arguments(obj, "join")["features-middle-result"] == "{{tasks.features-middle.outputs.parameters.result}}"
    assert [p["name"] for p in template(obj, "join")["inputs"]["parameters"]] == [
        "run_date",
        "limit",
        "dry_run",
        "features-left-result",
        "features-middle-result",
        "features-right-result",
    ]
    assert dag_task(obj, "publish")["dependencies"] == ["join", "features-left"]
    assert "dependencies" not in dag_task(obj, "source")


def test_parameters_become_workflow_arguments_with_string_values() -> None:
    obj = compiled("fan_out_in")
    values = {p["name"]: p["value"] for p in obj["spec"]["arguments"]["parameters"]}
    assert values == {"run_date": "", "limit": "100", "dry_run": "false"}
    assert "dry_run={{inputs.parameters.dry_run}}" in args(obj, "source")
    dag = template(obj, "headrace-dag")
    assert [p["name"] for p in dag["inputs"]["parameters"]] == ["run_date", "limit", "dry_run"]
    assert arguments(obj, "source")["dry_run"] == "{{inputs.parameters.dry_run}}"


def test_retries_become_a_retry_strategy_that_never_retries_bad_input() -> None:
    strategy = template(compiled("cron_sized", "template"), "extract")["retryStrategy"]
    assert strategy == {
        "limit": 3,
        "retryPolicy": "OnTransientError",
        "expression": "asInt(lastRetry.exitCode) != 2",
        "backoff": {"duration": "30s", "factor": 2, "cap": "86400s"},
    }


def test_retried_tasks_pass_argo_retry_number_plus_one_as_attempt() -> None:
    obj = compiled("cron_sized", "template")
    extract = args(obj, "extract")
    assert extract[extract.index("--attempt") + 1] == "{{=asInt(retries) + 1}}"
    assert "--attempt" not in args(obj, "score")
    assert "retryStrategy" not in template(obj, "score")


def test_fractional_backoff_factor_is_kept_exactly() -> None:
    backoff = template(compiled("cron_sized", "template"), "headrace-sized-train")["retryStrategy"]["backoff"]
    assert backoff == {"duration": "10s", "factor": "1.5", "cap": "600s"}


def test_timeout_becomes_active_deadline_seconds() -> None:
    obj = compiled("cron_sized", "template")
    assert template(obj, "train")["activeDeadlineSeconds"] == 7200
    assert template(obj, "score")["activeDeadlineSeconds"] == 900
    assert "activeDeadlineSeconds" not in template(obj, "extract")


def test_memory_is_limited_at_its_request_and_cpu_is_not_limited() -> None:
    resources = template(compiled("small_dag"), "extract")["container"]["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert "resources" not in template(compiled("small_dag"), "clean")["container"]


def test_explicit_limits_and_gpus_are_passed_through() -> None:
    resources = template(compiled("cron_sized", "template"), "train")["container"]["resources"]
    assert resources == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "12Gi", "nvidia.com/gpu": "1"},
    }


def nested(obj: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {task["name"]: task for task in template(obj, name)["dag"]["tasks"]}


def test_sized_task_runs_as_a_nested_dag_of_its_sizing_node_and_itself_retried_as_a_whole() -> None:
    obj = compiled("cron_sized", "template")
    outer = dag_task(obj, "train")
    assert outer["template"] == "headrace-sized-train"
    assert outer["dependencies"] == ["extract"]
    assert arguments(obj, "train") == {
        "run_date": "{{inputs.parameters.run_date}}",
        "extract-result": "{{tasks.extract.outputs.parameters.result}}",
    }
    assert "size-train" not in {t["name"] for t in template(obj, "headrace-dag")["dag"]["tasks"]}
    attempt = template(obj, "headrace-sized-train")
    assert attempt["retryStrategy"]["limit"] == 2
    assert "retryStrategy" not in template(obj, "train")  # retrying the pod alone would reuse its size
    tasks = nested(obj, "headrace-sized-train")
    assert list(tasks) == ["size-train", "train"]
    assert tasks["train"]["dependencies"] == ["size-train"]
    given = {p["name"]: p["value"] for p in tasks["size-train"]["arguments"]["parameters"]}
    assert given == {
        "run_date": "{{inputs.parameters.run_date}}",
        "extract-result": "{{inputs.parameters.extract-result}}",
        "attempt": "{{=asInt(retries) + 1}}",
    }


def test_sized_task_outputs_reach_downstream_through_the_nested_dag() -> None:
    obj = compiled("cron_sized", "template")
    outputs = {p["name"]: p["valueFrom"] for p in template(obj, "headrace-sized-train")["outputs"]["parameters"]}
    assert outputs == {
        name: {"parameter": f"{{{{tasks.train.outputs.parameters.{name}}}}}"}
        for name in ("result", "result-bytes", "result-rows")
    }
    assert arguments(obj, "score")["train-result"] == "{{tasks.train.outputs.parameters.result}}"


def test_sizing_node_has_the_task_inputs_the_attempt_and_the_run_date() -> None:
    obj = compiled("cron_sized", "template")
    assert args(obj, "size-train") == [
        "size",
        "tests.argo.pipelines.cron_sized:pipeline",
        "train",
        "--run-id",
        "{{workflow.name}}",
        "--attempt",
        "{{inputs.parameters.attempt}}",
        "--run-date",
        "{{inputs.parameters.run_date}}",
        "--input",
        "extract.result={{inputs.parameters.extract-result}}",
        "--outputs-dir",
        "/tmp/headrace/outputs",
    ]
    outputs = {p["name"]: p["valueFrom"]["path"] for p in template(obj, "size-train")["outputs"]["parameters"]}
    assert outputs == {
        "decision": "/tmp/headrace/outputs/decision",
        "pod-spec-patch": "/tmp/headrace/outputs/pod-spec-patch",
        "instance-type": "/tmp/headrace/outputs/instance-type",
        "instance-count": "/tmp/headrace/outputs/instance-count",
    }
    assert template(obj, "size-train")["container"]["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}


def test_sized_task_takes_its_pod_spec_patch_decision_and_attempt_from_the_nested_dag() -> None:
    obj = compiled("cron_sized", "template")
    given = {p["name"]: p["value"] for p in nested(obj, "headrace-sized-train")["train"]["arguments"]["parameters"]}
    assert given == {
        "run_date": "{{inputs.parameters.run_date}}",
        "extract-result": "{{inputs.parameters.extract-result}}",
        "sizing": "{{tasks.size-train.outputs.parameters.decision}}",
        "pod-spec-patch": "{{tasks.size-train.outputs.parameters.pod-spec-patch}}",
        "attempt": "{{=asInt(retries) + 1}}",
    }
    train = template(obj, "train")
    assert train["podSpecPatch"] == "{{inputs.parameters.pod-spec-patch}}"
    command = train["container"]["args"]
    assert command[command.index("--sizing") + 1] == "{{inputs.parameters.sizing}}"
    assert command[command.index("--attempt") + 1] == "{{inputs.parameters.attempt}}"
    assert "podSpecPatch" not in template(obj, "score")


def test_every_workflow_reports_its_end_through_the_exit_handler() -> None:
    obj = compiled("small_dag")
    assert obj["spec"]["onExit"] == "headrace-exit"
    assert args(obj, "headrace-exit") == [
        "exit-handler",
        "tests.argo.pipelines.small_dag:pipeline",
        "--run-id",
        "{{workflow.name}}",
        "--status",
        "{{workflow.status}}",
        "--duration",
        "{{workflow.duration}}",
        "--failures",
        "{{workflow.failures}}",
        "--run-date",
        "{{workflow.parameters.run_date}}",
    ]


def test_pods_read_headrace_config_and_secrets_and_run_the_cluster_profile() -> None:
    container = template(compiled("small_dag"), "extract")["container"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "headrace-config", "optional": True}},
        {"secretRef": {"name": "headrace-secrets", "optional": True}},
    ]
    assert container["env"] == [{"name": "HEADRACE_PROFILE", "value": "aws"}]
    other = template(compiled("small_dag", settings=Settings(argo_profile="local")), "extract")["container"]
    assert other["env"] == [{"name": "HEADRACE_PROFILE", "value": "local"}]


def test_image_comes_from_the_pipeline_then_settings_then_the_default() -> None:
    assert template(compiled("cron_sized", "template"), "train")["container"]["image"] == (
        "registry.example.com/ml/recipes:1.4.2"
    )
    assert template(compiled("small_dag"), "extract")["container"]["image"] == DEFAULT_IMAGE
    configured = compiled("small_dag", settings=Settings(image="my/image:2"))
    assert {t["container"]["image"] for t in configured["spec"]["templates"] if "container" in t} == {"my/image:2"}


def test_workflow_metadata_names_labels_and_namespace() -> None:
    obj = compiled("small_dag")
    assert obj["kind"] == "Workflow"
    assert obj["metadata"] == {
        "generateName": "small-dag-",
        "namespace": "argo",
        "labels": {"headrace.dev/pipeline": "small-dag", "team": "ml"},
    }
    assert obj["spec"]["podMetadata"] == {"labels": {"headrace.dev/pipeline": "small-dag"}}
    assert compiled("fan_out_in")["metadata"]["namespace"] == "ml"
    assert compiled("small_dag", settings=Settings(argo_namespace="jobs"))["metadata"]["namespace"] == "jobs"


def test_finished_workflows_and_succeeded_pods_are_cleaned_up() -> None:
    spec = compiled("small_dag")["spec"]
    assert spec["ttlStrategy"] == {"secondsAfterSuccess": 86400, "secondsAfterFailure": 604800}
    assert spec["podGC"] == {"strategy": "OnPodSuccess", "deleteDelayDuration": "10m"}


def test_template_is_named_after_the_pipeline_and_labels_the_workflows_it_starts() -> None:
    obj = compiled("cron_sized", "template")
    assert obj["kind"] == "WorkflowTemplate"
    assert obj["metadata"]["name"] == "cron-sized"
    assert "generateName" not in obj["metadata"]
    assert obj["spec"]["workflowMetadata"] == {"labels": {"headrace.dev/pipeline": "cron-sized"}}
    assert obj["spec"]["serviceAccountName"] == "headrace-workflow"
    assert obj["metadata"]["annotations"] == {"workflows.argoproj.io/description": "Nightly recommendation model"}


def test_cron_runs_the_template_of_the_same_name_on_argo_v4_schedules() -> None:
    obj = compiled("cron_sized", "cron")
    assert obj["kind"] == "CronWorkflow"
    assert obj["metadata"]["name"] == "cron-sized"
    spec = obj["spec"]
    assert spec["schedules"] == ["0 3 * * *", "30 15 * * 1-5"]
    assert "schedule" not in spec
    assert spec["timezone"] == "Asia/Tokyo"
    assert spec["concurrencyPolicy"] == "Replace"
    assert spec["startingDeadlineSeconds"] == 600
    assert spec["successfulJobsHistoryLimit"] == 5
    assert spec["failedJobsHistoryLimit"] == 2
    assert spec["suspend"] is False
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": "cron-sized"}
    assert spec["workflowSpec"]["arguments"] == {
        "parameters": [{"name": "run_date", "value": "{{workflow.scheduledTime}}"}]
    }
    assert spec["workflowMetadata"] == {"labels": {"headrace.dev/pipeline": "cron-sized"}}


def test_cron_of_an_unscheduled_pipeline_is_refused_with_one_line() -> None:
    with pytest.raises(PipelineInvalid) as raised:
        compiled("small_dag", "cron")
    assert str(raised.value).startswith("pipeline small-dag: schedule is not set")


def test_invalid_pipeline_is_refused_before_anything_is_built() -> None:
    @step
    def only() -> int:
        return 1

    with Pipeline("Bad_Name") as bad:
        only(retry=None, timeout="whenever")
    with pytest.raises(PipelineInvalid) as raised:
        compile_pipeline(bad, spec="x:pipeline", kind="workflow", settings=Settings())
    assert len(raised.value.problems) == 2


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(UserError, match="kind 'job'"):
        build(load("small_dag"), spec="x:pipeline", kind="job", settings=Settings())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("examples.recipe_stream:pipeline", "examples.recipe_stream:pipeline"),
        ("examples/recipe_stream:pipeline", "examples.recipe_stream:pipeline"),
        ("examples/recipe_stream", "examples.recipe_stream:pipeline"),
        ("./flows/daily.py:nightly", "flows.daily:nightly"),
        ("flows/daily.py", "flows.daily:pipeline"),
    ],
)
def test_path_specs_become_the_dotted_module_the_image_imports(spec: str, expected: str) -> None:
    assert image_spec(spec) == expected


def test_path_outside_the_project_falls_back_to_its_package(tmp_path: Path) -> None:
    package = tmp_path / "team" / "flows"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (tmp_path / "team" / "__init__.py").write_text("")
    assert image_spec(f"{package}/daily.py:pipeline", cwd=tmp_path / "elsewhere") == "team.flows.daily:pipeline"


def test_pods_run_as_the_workflow_service_account_and_a_non_root_user() -> None:
    spec = compiled("small_dag")["spec"]
    assert spec["serviceAccountName"] == "headrace-workflow"
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert compiled("cron_sized", "template")["spec"]["serviceAccountName"] == "headrace-workflow"
