"""SageMaker training: the local side in real subprocesses, the cloud side against the moto server.

moto records ``CreateTrainingJob`` requests and answers ``DescribeTrainingJob``, but it never runs
a container: every job is ``Completed`` at once, writes no model and no CloudWatch logs, and can
not be made to fail. So the cloud tests check the request headrace sends (image, hyperparameter
encoding, spot, sizing), idempotent attach, the missing-model guard, log streaming from log events
the test writes itself, and the model URI/size once the test has put a model where SageMaker
would. Left uncovered by moto: a real job's ``InProgress`` → ``Completed`` progression and a real
``FailureReason`` (the failure mapping is checked on a description shaped like SageMaker's).
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path

import botocore.session
import pytest

from steps.backends.handoff import Phase
from steps.backends.model_io import load_model, unpack
from steps.backends.sagemaker import (
    SAGEMAKER_STATES,
    image_uri,
    job_phase,
    model_artifact,
    train,
    training_job_name,
)
from steps.core.contract import ArtifactRef, SizingDecision, SizingTarget
from steps.core.errors import ConfigError, HandoffFailed, NotFoundError
from steps.core.settings import Settings, load_settings
from steps.runtime.context import StepContext
from tests.backends.conftest import BUCKET, make_context
from tests.backends.sagemaker_toolkit import DUMP_SCRIPT, contract_of, lay_out_job, run_toolkit

TRAIN_SCRIPT = textwrap.dedent(
    """
    import argparse, json, os, pickle, sys
    from pathlib import Path

    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int)
    parser.add_argument("--learning_rate", type=float)
    parser.add_argument("--loss", type=str)
    args = parser.parse_args()

    train = Path(os.environ["SM_CHANNEL_TRAIN"])
    rows = sum(len(f.read_text().splitlines()) - 1 for f in sorted(train.iterdir()))
    print(f"training on {rows} rows with {args.n_estimators} estimators", flush=True)
    model = {"rows": rows, "n_estimators": args.n_estimators, "learning_rate": args.learning_rate}
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "wb") as handle:
        pickle.dump(model, handle)
    config = Path(os.environ["SM_INPUT_CONFIG_DIR"])
    seen = {
        "argv": sys.argv[1:],
        "cwd": os.getcwd(),
        "hyperparameters.json": json.loads((config / "hyperparameters.json").read_text()),
        "resourceconfig.json": json.loads((config / "resourceconfig.json").read_text()),
        "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
    }
    Path(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json").write_text(json.dumps(seen))
    Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
    """
)

FAILING_SCRIPT = textwrap.dedent(
    """
    import os, sys
    print("loading data", flush=True)
    print("column 'label' not found", file=sys.stderr, flush=True)
    with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as handle:
        handle.write("ValueError: column 'label' not found in the train channel")
    sys.exit(1)
    """
)

HYPERPARAMETERS = {"n_estimators": 50, "learning_rate": 0.1, "loss": "log_loss"}


def source_dir(tmp_path: Path, script: str = TRAIN_SCRIPT) -> Path:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(script)
    (folder / "helpers.py").write_text("VALUE = 1\n")
    return folder


def training_data(ctx: StepContext) -> ArtifactRef:
    return ctx.store.put_bytes(b"x,label\n1,0\n2,1\n3,1\n", ctx.output_key("data.csv").replace("train/", "prep/"))


# ----------------------------------------------------------------------------- local side


def test_local_training_runs_the_script_under_the_container_contract(tmp_path: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings, task="train")
    data = training_data(ctx)

    ref = train(ctx, "train.py", str(source_dir(tmp_path)), data, hyperparameters=HYPERPARAMETERS)

    assert ref.format == "model" and ref.uri.endswith("/demo/r1/train/model.tar.gz") and ref.bytes > 0
    assert load_model(ref.uri) == {"rows": 3, "n_estimators": 50, "learning_rate": 0.1}
    seen = json.loads((unpack(Path(ref.uri.removeprefix("file://")), tmp_path / "unpacked") / "seen.json").read_text())
    assert seen["argv"] == ["--learning_rate", "0.1", "--loss", "log_loss", "--n_estimators", "50"]
    hps = seen["hyperparameters.json"]
    assert hps["n_estimators"] == "50" and hps["loss"] == '"log_loss"' and hps["sagemaker_program"] == '"train.py"'
    assert seen["resourceconfig.json"]["current_host"] == "algo-1"
    env = seen["env"]
    assert json.loads(env["SM_HPS"]) == HYPERPARAMETERS
    assert env["SM_HP_N_ESTIMATORS"] == "50" and env["SM_HP_LOSS"] == "log_loss"
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert Path(env["SM_CHANNEL_TRAIN"], "data.csv").read_text().startswith("x,label")
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert json.loads(env["SM_TRAINING_ENV"])["hyperparameters"] == HYPERPARAMETERS
    assert seen["cwd"] == env["SM_MODULE_DIR"]


def test_local_training_records_the_experiment_conditions(tmp_path: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings, task="train")
    data = training_data(ctx)

    folder = source_dir(tmp_path)

    train(ctx, "train.py", str(folder), {"train": data}, hyperparameters=HYPERPARAMETERS)
    first_hash = ctx.records["code_sha256"]
    (folder / "helpers.py").write_text("VALUE = 2\n")
    train(ctx, "train.py", str(folder), {"train": data}, hyperparameters=HYPERPARAMETERS)

    assert ctx.records["hyperparameters"] == HYPERPARAMETERS
    assert ctx.records["data"] == {"train": data.uri}
    assert ctx.records["framework"] == "sklearn" and ctx.records["instance_type"] == "ml.m5.large"
    assert len(first_hash) == 64 and ctx.records["code_sha256"] != first_hash


def test_failing_script_shows_its_failure_file_and_log_tail_and_stores_no_model(
    tmp_path: Path, local_settings: Settings
) -> None:
    ctx = make_context(local_settings, task="train")

    with pytest.raises(HandoffFailed) as raised:
        train(ctx, "train.py", str(source_dir(tmp_path, FAILING_SCRIPT)), training_data(ctx))

    message = str(raised.value)
    assert "training script train.py exited with code 1" in message
    assert "ValueError: column 'label' not found in the train channel" in message
    assert "loading data" in message and "column 'label' not found" in message.splitlines()[-1]
    assert raised.value.reason == "ValueError: column 'label' not found in the train channel"
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("model.tar.gz")))


def test_script_running_past_max_runtime_is_stopped_like_sagemaker_does(
    tmp_path: Path, local_settings: Settings
) -> None:
    ctx = make_context(local_settings, task="train")
    slow = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    started = time.monotonic()

    with pytest.raises(HandoffFailed, match="MaxRuntimeExceeded") as raised:
        train(ctx, "train.py", str(source_dir(tmp_path, slow)), training_data(ctx), max_runtime=1)

    assert time.monotonic() - started < 30
    assert "started" in str(raised.value)


def test_relative_source_dir_resolves_against_the_working_folder(
    tmp_path: Path, local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_dir(tmp_path)
    ctx = make_context(local_settings, task="train")
    ctx.work_dir = tmp_path

    ref = train(ctx, "train.py", "src", training_data(ctx))

    assert load_model(ref.uri)["rows"] == 3


def test_relative_source_dir_falls_back_to_the_pipeline_modules_folder(
    tmp_path: Path, local_settings: Settings, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import importlib
    import sys

    project = tmp_path / "project"
    project.mkdir()
    source_dir(project)
    (project / "demo_flow_for_source_dir.py").write_text(
        "from pipelines import Pipeline\npipeline = Pipeline('demo')\n"
    )
    monkeypatch.syspath_prepend(str(project))
    importlib.import_module("demo_flow_for_source_dir")
    request.addfinalizer(lambda: sys.modules.pop("demo_flow_for_source_dir", None))
    ctx = make_context(local_settings, task="train")
    ctx.work_dir = tmp_path / "elsewhere"

    ref = train(ctx, "train.py", "src", training_data(ctx))

    assert load_model(ref.uri)["rows"] == 3


def test_missing_entry_point_names_the_folder(tmp_path: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings, task="train")

    with pytest.raises(NotFoundError, match=r"entry_point 'fit.py' is not in .*src"):
        train(ctx, "fit.py", str(source_dir(tmp_path)), training_data(ctx))


#: The issue's example: a bool, a dict, a one-letter name, and None.
TOOLKIT_HYPERPARAMETERS = {"use_gpu": True, "opts": {"a": 1}, "k": 5, "none": None}


def dump_source(tmp_path: Path) -> Path:
    folder = tmp_path / "dump-src"
    folder.mkdir()
    (folder / "train.py").write_text(DUMP_SCRIPT)
    return folder


def test_local_runner_gives_the_script_exactly_what_the_sagemaker_toolkit_gives_it(
    tmp_path: Path, local_settings: Settings
) -> None:
    """headrace's local runner and the real toolkit (its own venv) run the same job folder: the
    script's argv, working folder, SM_* variables and PYTHONPATH head must be identical."""
    ctx = make_context(local_settings, task="train")
    ref = train(
        ctx, "train.py", str(dump_source(tmp_path)), training_data(ctx), hyperparameters=TOOLKIT_HYPERPARAMETERS
    )
    local = json.loads((unpack(Path(ref.uri.removeprefix("file://")), tmp_path / "local") / "seen.json").read_text())
    job = training_job_name(ctx.pipeline, ctx.task, ctx.run_id, ctx.attempt)
    run_dir = local_settings.state_path / "sagemaker" / job

    toolkit = run_toolkit(run_dir.resolve(), job)

    assert contract_of(local) == contract_of(toolkit)


@pytest.fixture(params=["local", "cloud"])
def script_saw(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    """What the dump script saw when trained on one side.

    local: headrace's local runner. cloud: ``train`` against the moto server (which records the
    CreateTrainingJob request but runs nothing), then the real toolkit plays the container on that
    job: the test lays out /opt/ml from moto's DescribeTrainingJob and the S3 channel, and the
    toolkit downloads ``sourcedir.tar.gz`` from moto's S3 itself.
    """
    if request.param == "local":
        ctx = make_context(request.getfixturevalue("local_settings"), task="train")
        ref = train(
            ctx, "train.py", str(dump_source(tmp_path)), training_data(ctx), hyperparameters=TOOLKIT_HYPERPARAMETERS
        )
        return contract_of(
            json.loads((unpack(Path(ref.uri.removeprefix("file://")), tmp_path / "m") / "seen.json").read_text())
        )
    from steps.storage.aws import client

    settings = request.getfixturevalue("aws_settings")
    endpoint = request.getfixturevalue("aws_env")
    ctx = make_context(settings, task="train")
    put_model_where_sagemaker_would(ctx, b"placeholder: moto trains nothing")
    train(ctx, "train.py", str(dump_source(tmp_path)), training_data(ctx), hyperparameters=TOOLKIT_HYPERPARAMETERS)
    job = training_job_name(ctx.pipeline, ctx.task, ctx.run_id, ctx.attempt)
    description = client("sagemaker", settings).describe_training_job(TrainingJobName=job)
    base = tmp_path / "opt-ml"
    lay_out_job(description, client("s3", settings), base)
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    return contract_of(run_toolkit(base, job, {"S3_ENDPOINT_URL": endpoint, **credentials}))


@pytest.mark.integration
def test_script_gets_the_toolkits_arguments_and_variables_on_either_side(script_saw: dict[str, object]) -> None:
    env = script_saw["env"]
    assert isinstance(env, dict)
    assert script_saw["argv"] == ["train.py", "-k", "5", "--none", "", "--opts", "a=1", "--use_gpu", "True"]
    assert env["SM_USER_ARGS"] == '["-k","5","--none","","--opts","a=1","--use_gpu","True"]'
    assert env["SM_HPS"] == '{"k":5,"none":null,"opts":{"a":1},"use_gpu":true}'
    assert (env["SM_HP_USE_GPU"], env["SM_HP_OPTS"], env["SM_HP_K"], env["SM_HP_NONE"]) == ("true", '{"a":1}', "5", "")
    assert "SM_CHECKPOINT_DIR" not in env
    assert env["SM_CHANNELS"] == '["train"]'
    assert Path(env["SM_CHANNEL_TRAIN"], "data.csv").read_text().startswith("x,label")
    assert Path(str(script_saw["cwd"]), "train.py").is_file() and script_saw["pythonpath_head"] == script_saw["cwd"]
    assert (env["SM_CURRENT_HOST"], env["SM_MODULE_NAME"], env["SM_USER_ENTRY_POINT"]) == (
        "algo-1",
        "train",
        "train.py",
    )
    assert env["SM_FRAMEWORK_MODULE"] == "sagemaker_sklearn_container.training:main"
    assert env["TRAINING_JOB_NAME"] == env["SAGEMAKER_JOB_NAME"] == "demo-train-r1-a1"


def test_source_dir_dot_with_the_state_folder_inside_copies_the_project_once(
    tmp_path: Path, local_settings: Settings
) -> None:
    """The entry script beside the pipeline module (source_dir=".") while .headrace/ sits in the
    same folder: the code copy leaves the state folder out instead of copying into itself."""
    source_dir(tmp_path)
    (tmp_path / "src" / "train.py").rename(tmp_path / "train.py")
    ctx = make_context(local_settings, task="train")
    ctx.work_dir = tmp_path

    ref = train(ctx, "train.py", ".", training_data(ctx))

    assert load_model(ref.uri)["rows"] == 3
    code = local_settings.state_path / "sagemaker" / "demo-train-r1-a1" / "code"
    assert (code / "train.py").is_file() and (code / "src" / "helpers.py").is_file()
    assert not (code / ".headrace").exists()


def test_requirements_txt_is_installed_into_the_jobs_own_environment_before_the_script_runs(
    tmp_path: Path, local_settings: Settings
) -> None:
    import zipfile

    wheel = tmp_path / "headrace_probe-1.0-py3-none-any.whl"
    info = "headrace_probe-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("headrace_probe.py", "VALUE = 42\n")
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: headrace-probe\nVersion: 1.0\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    script = "import os, pickle, headrace_probe\n" + (
        "pickle.dump({'probe': headrace_probe.VALUE}, open(os.path.join(os.environ['SM_MODEL_DIR'], 'model.pkl'), 'wb'))\n"
    )
    folder = source_dir(tmp_path, script)
    (folder / "requirements.txt").write_text(f"{wheel}\n")
    ctx = make_context(local_settings, task="train")

    ref = train(ctx, "train.py", str(folder), training_data(ctx))

    assert load_model(ref.uri) == {"probe": 42}
    import importlib.util

    assert importlib.util.find_spec("headrace_probe") is None  # headrace's own environment is untouched


# ----------------------------------------------------------------------------- cloud side (moto)


@pytest.fixture
def aws_settings(s3_root: str) -> Settings:
    return load_settings(
        {
            "profile": "aws",
            "artifact_root": s3_root,
            "sagemaker_role_arn": "arn:aws:iam::123456789012:role/headrace-training",
        }
    )


def sagemaker_client(settings: Settings) -> object:
    from steps.storage.aws import client

    return client("sagemaker", settings)


def put_model_where_sagemaker_would(ctx: StepContext, payload: bytes) -> str:
    """SageMaker writes <S3OutputPath>/<job>/output/model.tar.gz; moto does not, so the test does."""
    from steps.storage.aws import client

    job = training_job_name(ctx.pipeline, ctx.task, ctx.run_id, ctx.attempt)
    prefix = ctx.store.uri_for(ctx.output_key("sagemaker")).removeprefix(f"s3://{BUCKET}/")
    key = f"{prefix}/{job}/output/model.tar.gz"
    client("s3", ctx.settings).put_object(Bucket=BUCKET, Key=key, Body=payload)
    return f"s3://{BUCKET}/{key}"


@pytest.mark.integration
def test_cloud_training_sends_framework_image_encoded_hyperparameters_and_spot(
    tmp_path: Path, aws_settings: Settings
) -> None:
    ctx = make_context(aws_settings, task="train")
    model_uri = put_model_where_sagemaker_would(ctx, b"model-bytes" * 10)

    ref = train(
        ctx,
        "train.py",
        str(source_dir(tmp_path)),
        training_data(ctx),
        hyperparameters=HYPERPARAMETERS,
        spot=True,
        max_runtime="2h",
    )

    assert ref == ArtifactRef(model_uri, 110, None, "model")
    job = sagemaker_client(aws_settings).describe_training_job(TrainingJobName="demo-train-r1-a1")  # type: ignore[attr-defined]
    assert (
        job["AlgorithmSpecification"]["TrainingImage"]
        == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )
    hps = job["HyperParameters"]
    assert hps["n_estimators"] == "50" and hps["loss"] == '"log_loss"'
    assert hps["sagemaker_program"] == '"train.py"'
    assert json.loads(hps["sagemaker_submit_directory"]).endswith("/demo/r1/train/sourcedir.tar.gz")
    assert job["EnableManagedSpotTraining"] is True
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert job["RoleArn"] == "arn:aws:iam::123456789012:role/headrace-training"
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"].startswith(f"s3://{BUCKET}/")
    assert ctx.store.exists(json.loads(hps["sagemaker_submit_directory"]))
    framework = json.loads(ctx.store.read_bytes(model_uri + ".framework.json"))
    assert (framework["package"], framework["package_version"]) == ("scikit-learn", "1.2.1")


@pytest.mark.integration
def test_cloud_training_uses_the_control_rooms_instance_choice(tmp_path: Path, aws_settings: Settings) -> None:
    ctx = make_context(aws_settings, task="train")
    ctx.sizing = SizingDecision(SizingTarget.SAGEMAKER, "ml.g5.xlarge", 2, reason="history: 3 GiB peak")
    put_model_where_sagemaker_would(ctx, b"m")

    train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx), framework="pytorch")

    job = sagemaker_client(aws_settings).describe_training_job(TrainingJobName="demo-train-r1-a1")  # type: ignore[attr-defined]
    assert job["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge" and job["ResourceConfig"]["InstanceCount"] == 2
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/pytorch-training:2.3.0-gpu-py311")
    assert ctx.records["instance_type"] == "ml.g5.xlarge"


@pytest.mark.integration
def test_retried_attempt_attaches_to_its_existing_job_instead_of_creating_another(
    tmp_path: Path, aws_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = make_context(aws_settings, task="train")
    put_model_where_sagemaker_would(ctx, b"m")
    caplog.set_level(logging.INFO)

    first = train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))
    second = train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))

    assert first == second
    created = [r for r in caplog.records if r.getMessage().startswith("created training job")]
    attached = [r for r in caplog.records if r.getMessage().startswith("attaching to training job demo-train-r1-a1")]
    assert len(created) == 1 and len(attached) == 1


@pytest.mark.integration
def test_cloud_training_streams_the_jobs_cloudwatch_log_lines(
    tmp_path: Path, aws_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from steps.storage.aws import client

    ctx = make_context(aws_settings, task="train")
    put_model_where_sagemaker_would(ctx, b"m")
    logs = client("logs", aws_settings)
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    stream = "demo-train-r1-a1/algo-1-1700000000"
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream)
    logs.put_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream,
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "epoch 1 loss 0.61"}],
    )
    caplog.set_level(logging.INFO)

    train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))

    messages = [r.getMessage() for r in caplog.records]
    assert "[algo-1-1700000000] epoch 1 loss 0.61" in messages
    assert "training job demo-train-r1-a1: Completed/Completed" in messages


@pytest.mark.integration
def test_completed_job_without_a_model_artifact_fails_naming_the_uri(tmp_path: Path, aws_settings: Settings) -> None:
    ctx = make_context(aws_settings, task="train")

    with pytest.raises(HandoffFailed, match=r"completed but its model artifact s3://.*/model.tar.gz does not exist"):
        train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))


@pytest.mark.integration
def test_missing_role_is_a_config_error_naming_the_setting(tmp_path: Path, s3_root: str) -> None:
    ctx = make_context(load_settings({"profile": "aws", "artifact_root": s3_root}), task="train")

    with pytest.raises(ConfigError, match="HEADRACE_SAGEMAKER_ROLE_ARN"):
        train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))


# ----------------------------------------------------------------------------- states and names


def test_state_table_covers_every_training_job_status_sagemaker_defines() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    assert set(SAGEMAKER_STATES) == set(model.shape_for("TrainingJobStatus").enum)


def test_failed_job_surfaces_sagemakers_failure_reason(local_settings: Settings) -> None:
    ctx = make_context(local_settings, task="train")
    description = {
        "TrainingJobName": "demo-train-r1-a1",
        "TrainingJobStatus": "Failed",
        "SecondaryStatus": "Failed",
        "FailureReason": "AlgorithmError: ExecuteUserScriptError: exit code 1",
    }

    with pytest.raises(HandoffFailed) as raised:
        model_artifact(ctx, description)

    assert raised.value.reason == "AlgorithmError: ExecuteUserScriptError: exit code 1"
    assert "training job demo-train-r1-a1 ended Failed" in str(raised.value)


def test_job_stopped_for_exceeding_its_runtime_is_a_timeout() -> None:
    assert job_phase({"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded"}) is Phase.TIMEOUT
    assert job_phase({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}) is Phase.CANCELLED
    assert job_phase({"TrainingJobStatus": "SomethingNew"}) is Phase.RUNNING


def test_job_names_are_deterministic_valid_and_short() -> None:
    name = training_job_name("recipe_stream", "train_model", "scheduled-2026-11-22T05:00:00Z" * 3, 2)
    assert name == training_job_name("recipe_stream", "train_model", "scheduled-2026-11-22T05:00:00Z" * 3, 2)
    assert len(name) <= 63 and all(c.isalnum() or c == "-" for c in name)
    assert training_job_name("p", "t", "r1", 1) != training_job_name("p", "t", "r1", 2)


def test_image_uri_by_region_and_passthrough() -> None:
    assert image_uri("xgboost", None, "eu-west-1", "ml.m5.large") == (
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    )
    custom = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:7"
    assert image_uri(custom, None, "us-east-1", "ml.m5.large") == custom


def test_pytorch_images_come_from_each_regions_own_account() -> None:
    assert image_uri("pytorch", "2.3.0", "us-east-1", "ml.g5.xlarge") == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3.0-gpu-py311"
    )
    assert image_uri("pytorch", "2.3", "ap-east-1", "ml.m5.large") == (
        "871362719292.dkr.ecr.ap-east-1.amazonaws.com/pytorch-training:2.3.0-cpu-py311"
    )
    assert image_uri("sklearn", "1.2-1", "cn-north-1", "ml.m5.large") == (
        "450853457545.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-scikit-learn:1.2-1-cpu-py3"
    )


def test_unknown_framework_version_names_the_versions_there_are() -> None:
    from steps.core.errors import UserError

    with pytest.raises(
        UserError, match=r"framework_version '9.9-9': sklearn has no such SageMaker image; use one of .*1.2-1"
    ):
        image_uri("sklearn", "9.9-9", "us-east-1", "ml.m5.large")


def test_vendored_image_tables_equal_the_installed_sagemaker_sdks() -> None:
    """The copy in steps/backends/sagemaker_images.json against the SDK's own JSON (the [aws] extra)."""
    import importlib.util

    from steps.backends.sagemaker_images import tables

    spec = importlib.util.find_spec("sagemaker")
    folders = [Path(p, "core", "image_uri_config") for p in (spec.submodule_search_locations or [])] if spec else []
    folder = next((f for f in folders if (f / "sklearn.json").is_file()), None)
    if folder is None:
        pytest.skip("the sagemaker SDK ([aws] extra) is not installed: vendored image tables not compared")
    for framework, vendored in tables().items():
        assert json.loads((folder / f"{framework}.json").read_text())["training"] == vendored, framework


def test_sigterm_while_waiting_on_a_job_becomes_an_interrupt_and_the_handler_is_restored() -> None:
    import os
    import signal

    from steps.backends.handoff import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), terminate_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal interrupts this sleep

    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.integration
def test_a_bug_inside_the_hand_off_stays_a_bug_instead_of_a_retryable_provider_failure(
    tmp_path: Path, aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only botocore's errors are translated; a KeyError in headrace's own code must not become
    HandoffFailed (which Argo's retryStrategy would retry)."""
    from steps.backends import sagemaker

    def broken(**kwargs: object) -> dict[str, object]:
        raise KeyError("TrainingJobName")

    monkeypatch.setattr(sagemaker, "create_request", broken)
    ctx = make_context(aws_settings, task="train")

    with pytest.raises(KeyError, match="TrainingJobName"):
        train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx))


def test_local_training_refuses_a_container_version_whose_library_version_is_unknown(
    tmp_path: Path, local_settings: Settings
) -> None:
    from steps.core.errors import UserError

    ctx = make_context(local_settings, task="train")

    with pytest.raises(UserError) as raised:
        train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx), framework_version="1.9-0")

    assert str(raised.value).startswith("pipeline demo, task train: framework_version '1.9-0': headrace does not know")
    assert "use one of 0.23-1, 1.0-1, 1.2-1, 1.4-2" in str(raised.value) and "\n" not in str(raised.value)
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("model.tar.gz")))


def test_local_training_records_the_models_framework_beside_it(tmp_path: Path, local_settings: Settings) -> None:
    from steps.backends.frameworks import framework_for, read_local_framework

    ctx = make_context(local_settings, task="train")

    ref = train(ctx, "train.py", str(source_dir(tmp_path)), training_data(ctx), framework_version="1.2-1")

    assert read_local_framework(Path(ref.uri.removeprefix("file://"))) == framework_for("sklearn", "1.2-1")
