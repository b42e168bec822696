"""Glue batch inference: the local engines on real files and processes, the Glue side on moto.

moto stores Glue jobs and runs and walks a run through STARTING → RUNNING → SUCCEEDED (stepped
by its state manager), but it never executes the job script: nothing is scored and no output is
written, a run can not be made to fail, and moto has no ``UpdateJob``. So the cloud tests check
the job definition and the run's arguments, the uploaded script and code zip, attaching on a
retry (past GetJobRuns' first page), one job per code version, the state changes logged while
polling, the guard against a "successful" run that wrote nothing, and the rows/bytes read back
once the test has written output where the job would. The generated script itself is executed
by real local Spark in ``test_generated_glue_script_...``, and the parity suite at the end runs on
both sides: locally (the Arrow engine) and on the cloud side, where moto holds the job and the run
while the test does Glue's work with real local Spark on the script and zip headrace uploaded
(:func:`play_glue`). Left uncovered: Glue's own ``ErrorMessage`` on a failed run (mapped on a run
shaped like Glue's).
"""

from __future__ import annotations

import io
import json
import logging
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import botocore.session
import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steps.backends import handoff
from steps.backends.batch_local import score_parquet
from steps.backends.glue import batch_infer, run_script_locally
from steps.backends.glue_cloud import GLUE_STATES, check_run
from steps.backends.glue_script import ROWS_FILE
from steps.backends.model_io import clear_cache, pack_dir
from steps.core.contract import ArtifactRef, SizingDecision, SizingTarget
from steps.core.errors import ConfigError, HandoffFailed, UserError
from steps.core.settings import Settings, load_settings
from tests.backends.conftest import BUCKET, make_context
from tests.backends.scoring_examples import LinearModel, score, score_without_id, write_input


def model_archive(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    joblib.dump(LinearModel([2.0, -1.0]), folder / "model.joblib")
    clear_cache()
    return pack_dir(folder, tmp_path / "model.tar.gz")


def expected_scores(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"id": frame["id"], "score": frame["a"] * 2.0 - frame["b"]})


# ----------------------------------------------------------------------------- local side


def test_local_batch_inference_returns_the_scored_dataset_with_rows_and_bytes(
    tmp_path: Path, local_settings: Settings
) -> None:
    ctx = make_context(local_settings, task="score")
    frame = write_input(tmp_path / "in.parquet", 6_000, row_group_size=1_500)
    data = ctx.store.put_file(tmp_path / "in.parquet", "demo/r1/prep/features.parquet", rows=6_000, format="parquet")
    model = ctx.store.put_file(model_archive(tmp_path), "demo/r1/train/model.tar.gz", format="model")

    ref = batch_infer(ctx, score, ctx.artifact(model), ctx.artifact(data), batch_size=1_000)

    assert ref.format == "parquet" and ref.rows == 6_000 and ref.uri.endswith("/demo/r1/score/scores")
    scored = ctx.artifact(ref).read_pandas()
    pd.testing.assert_frame_equal(scored, expected_scores(frame))
    assert ref.bytes == sum(p.stat().st_size for p in Path(ref.uri.removeprefix("file://")).glob("*.parquet"))
    assert ctx.records["batch_engine"] == "arrow" and ctx.records["batch_rows"] == 6_000


def test_local_batch_inference_names_the_missing_column(tmp_path: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings, task="score")
    write_input(tmp_path / "in.parquet", 100, row_group_size=100)

    with pytest.raises(UserError, match="column 'id' is missing"):
        batch_infer(
            ctx,
            score_without_id,
            model_archive(tmp_path),
            tmp_path / "in.parquet",
            output_schema={"id": "int64", "score": "double"},
        )

    assert not Path(ctx.store.uri_for(ctx.output_key("scores")).removeprefix("file://")).exists()


def test_unknown_engine_is_a_config_error_naming_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADRACE_GLUE_ENGINE", "dask")
    settings = load_settings({"artifact_root": str(tmp_path / "artifacts")})
    write_input(tmp_path / "in.parquet", 10, row_group_size=10)

    with pytest.raises(ConfigError, match="glue_engine: 'dask' is not an engine; use arrow or spark"):
        batch_infer(make_context(settings), score, model_archive(tmp_path), tmp_path / "in.parquet")


def test_model_of_a_framework_version_that_does_not_install_here_is_refused_in_one_line(
    tmp_path: Path, local_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.backends.frameworks import RECORD_SUFFIX, Framework, record

    monkeypatch.setenv("HEADRACE_FRAMEWORK_CACHE", str(tmp_path / "frameworks"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # nothing to install from: as a version with no wheel here
    ctx = make_context(local_settings, task="score")
    write_input(tmp_path / "in.parquet", 10, row_group_size=10)
    model = ctx.store.put_file(model_archive(tmp_path), "demo/r1/train/model.tar.gz", format="model")
    old = Framework("sklearn", "0.20.0", "scikit-learn", "0.20.0")
    ctx.store.put_bytes(record(old), "demo/r1/train/model.tar.gz" + RECORD_SUFFIX)

    with pytest.raises(ConfigError) as raised:
        batch_infer(ctx, score, model, tmp_path / "in.parquet")

    message = str(raised.value)
    assert "\n" not in message
    assert "model framework sklearn 0.20.0 needs scikit-learn==0.20.0, which does not install for Python 3." in message
    assert not (tmp_path / "artifacts" / "demo" / "r1" / "score" / "scores").exists()


@pytest.mark.spark
def test_generated_glue_script_on_local_spark_scores_the_same_as_the_arrow_engine(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    frame = write_input(tmp_path / "in.parquet", 5_000, row_group_size=1_000)
    model = model_archive(tmp_path)
    arrow = score_parquet(tmp_path / "in.parquet", tmp_path / "arrow", score, model, batch_size=400, workers=2)

    fast_start = {"spark.driver.extraJavaOptions": "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"}

    spark = run_script_locally(
        tmp_path / "in.parquet", tmp_path / "spark", score, model, batch_size=400, conf=fast_start, timeout=240
    )

    assert spark.rows == arrow.rows == 5_000
    assert spark.processing_seconds is not None and spark.processing_seconds > 0  # the work, apart from start-up
    by_spark = pq.read_table(tmp_path / "spark").to_pandas().sort_values("id").reset_index(drop=True)
    by_arrow = pq.read_table(tmp_path / "arrow").to_pandas()
    pd.testing.assert_frame_equal(by_spark, by_arrow)
    pd.testing.assert_frame_equal(by_arrow, expected_scores(frame))
    assert (tmp_path / "spark" / "_SUCCESS").exists() and (tmp_path / "spark" / "_rows").read_text() == "5000"
    # the job's own output reaches the task's log, as a Glue job's reaches CloudWatch
    assert "headrace: scored 5000 rows into " in capfd.readouterr().out


# ----------------------------------------------------------------------------- Glue side (moto)


@pytest.fixture
def aws_settings(s3_root: str) -> Settings:
    return load_settings(
        {"profile": "aws", "artifact_root": s3_root, "glue_role_arn": "arn:aws:iam::123456789012:role/headrace-glue"}
    )


@pytest.fixture
def stepped_runs(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Glue runs advance one state per GetJobRun; polls pause for 10 ms instead of seconds."""

    def post(path: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(f"{aws_env}/moto-api/state-manager/{path}", json.dumps(body).encode())
        urllib.request.urlopen(request).read()

    monkeypatch.setattr(handoff, "DEFAULT_BACKOFF", handoff.Backoff(initial=0.01, maximum=0.01))
    post("set-transition", {"model_name": "glue::job_run", "transition": {"progression": "manual", "times": 1}})
    yield
    post("unset-transition", {"model_name": "glue::job_run"})


def only_job(glue: object) -> dict[str, object]:
    (job,) = glue.get_jobs()["Jobs"]  # type: ignore[attr-defined]
    return job  # type: ignore[no-any-return]


def cloud_inputs(ctx: object, tmp_path: Path) -> tuple[ArtifactRef, ArtifactRef]:
    write_input(tmp_path / "in.parquet", 100, row_group_size=100)
    store = ctx.store  # type: ignore[attr-defined]
    data = store.put_file(tmp_path / "in.parquet", "demo/r1/prep/features.parquet", rows=100, format="parquet")
    model = store.put_file(model_archive(tmp_path), "demo/r1/train/model.tar.gz", format="model")
    return model, data


def write_output_where_the_job_would(settings: Settings, rows: int) -> int:
    """The Glue job writes part files and then ``_rows``; moto runs nothing, so the test does."""
    from steps.storage.aws import client

    s3 = client("s3", settings)
    sizes = 0
    for part in range(2):
        buffer = io.BytesIO()
        pq.write_table(pa.table({"id": list(range(rows // 2)), "score": [0.5] * (rows // 2)}), buffer)
        body = buffer.getvalue()
        sizes += len(body)
        s3.put_object(Bucket=BUCKET, Key=f"artifacts/demo/r1/score/scores/part-{part:05d}.snappy.parquet", Body=body)
    s3.put_object(Bucket=BUCKET, Key="artifacts/demo/r1/score/scores/_SUCCESS", Body=b"")
    s3.put_object(Bucket=BUCKET, Key="artifacts/demo/r1/score/scores/_rows", Body=str(rows).encode())
    return sizes


@pytest.mark.integration
def test_glue_job_is_defined_with_the_script_and_code_and_run_with_the_sized_workers(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None, caplog: pytest.LogCaptureFixture
) -> None:
    from steps.storage.aws import client

    ctx = make_context(aws_settings, task="score")
    ctx.sizing = SizingDecision(SizingTarget.GLUE, "G.2X", 6, reason="12 GiB input")
    model, data = cloud_inputs(ctx, tmp_path)
    size = write_output_where_the_job_would(aws_settings, 100)
    caplog.set_level(logging.INFO)

    ref = batch_infer(ctx, score, model, data, output_schema={"id": "int64", "score": "double"})

    assert ref == ArtifactRef(f"s3://{BUCKET}/artifacts/demo/r1/score/scores/", size, 100, "parquet")
    glue, s3 = client("glue", aws_settings), client("s3", aws_settings)
    job = only_job(glue)
    assert job["Name"].startswith("headrace-demo-score-")
    assert job["GlueVersion"] == "5.0" and job["Command"]["Name"] == "glueetl"
    assert job["Role"] == "arn:aws:iam::123456789012:role/headrace-glue"
    script_key = job["Command"]["ScriptLocation"].removeprefix(f"s3://{BUCKET}/")
    script = s3.get_object(Bucket=BUCKET, Key=script_key)["Body"].read().decode()
    assert "mapInPandas" in script and "SparkSession" in script and "awsglue" not in script
    zip_key = job["DefaultArguments"]["--extra-py-files"].removeprefix(f"s3://{BUCKET}/")
    names = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=zip_key)["Body"].read())).namelist()
    assert {"steps/backends/model_io.py", "steps/core/errors.py", "pipelines/graph.py", "scoring_examples.py"} <= set(
        names
    )
    (run,) = glue.get_job_runs(JobName=job["Name"])["JobRuns"]
    assert run["WorkerType"] == "G.2X" and run["NumberOfWorkers"] == 6
    assert run["Arguments"]["--score"] == "scoring_examples:score"
    assert run["Arguments"]["--input"] == data.uri and run["Arguments"]["--model"] == model.uri
    assert json.loads(run["Arguments"]["--output-schema"]) == {"id": "int64", "score": "double"}
    states = [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.getMessage().startswith("Glue run jr_")]
    assert states == ["RUNNING", "SUCCEEDED"]


@pytest.mark.integration
def test_retried_attempt_attaches_to_its_run_and_a_new_attempt_reuses_the_job(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None
) -> None:
    from steps.storage.aws import client

    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)
    write_output_where_the_job_would(aws_settings, 100)

    first = batch_infer(ctx, score, model, data)
    again = batch_infer(ctx, score, model, data)
    ctx.attempt = 2
    batch_infer(ctx, score, model, data)

    assert first == again
    glue = client("glue", aws_settings)
    runs = glue.get_job_runs(JobName=only_job(glue)["Name"])["JobRuns"]
    assert sorted(r["Arguments"]["--headrace-attempt"] for r in runs) == ["r1/score/1", "r1/score/2"]


@pytest.mark.integration
def test_run_that_succeeds_without_writing_its_output_is_a_handoff_failure(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None
) -> None:
    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)

    with pytest.raises(HandoffFailed, match=r"reported success but wrote no s3://.*/scores/_rows"):
        batch_infer(ctx, score, model, data)


@pytest.mark.integration
def test_missing_glue_role_is_a_config_error_naming_the_setting(tmp_path: Path, s3_root: str) -> None:
    ctx = make_context(load_settings({"profile": "aws", "artifact_root": s3_root}), task="score")
    model, data = cloud_inputs(ctx, tmp_path)

    with pytest.raises(ConfigError, match="HEADRACE_GLUE_ROLE_ARN"):
        batch_infer(ctx, score, model, data)


def test_state_table_covers_every_job_run_state_glue_defines() -> None:
    model = botocore.session.get_session().get_service_model("glue")
    assert set(GLUE_STATES) == set(model.shape_for("JobRunState").enum)


def test_failed_run_surfaces_glues_error_message() -> None:
    run = {
        "Id": "jr_1",
        "JobName": "headrace-demo-score",
        "JobRunState": "FAILED",
        "ErrorMessage": "UserError: score output: column 'id' is missing in batch 0",
    }

    with pytest.raises(HandoffFailed) as raised:
        check_run("pipeline demo, task score", run)

    assert raised.value.reason == "UserError: score output: column 'id' is missing in batch 0"
    assert "ended FAILED" in str(raised.value)


PIPELINE = """
import pandas as pd
from pipelines import Pipeline, step
from steps.backends import glue, sagemaker


@step
def prep() -> pd.DataFrame:
    return pd.DataFrame({"id": range(3000), "x": [i / 10 for i in range(3000)]})


def score(batch: pd.DataFrame, model: dict) -> pd.DataFrame:
    return pd.DataFrame({"id": batch["id"], "y": batch["x"] * model["w"]})


train = step(sagemaker.train)
infer = step(glue.batch_infer, name="score")

with Pipeline("e2e") as pipeline:
    data = prep()
    model = train(entry_point="train.py", source_dir="src", data=data, hyperparameters={"w": 2.5})
    infer(score=score, model=model, data=data, batch_size=1000)
"""

TRAIN = """
import argparse, os, pickle
parser = argparse.ArgumentParser()
parser.add_argument("-w", type=float)  # the toolkit passes one-letter names with one dash
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "wb") as handle:
    pickle.dump({"w": parser.parse_args().w}, handle)
"""


@pytest.mark.slow
def test_pipeline_trains_then_scores_through_the_in_pod_entrypoint(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN)
    (tmp_path / "flow.py").write_text(PIPELINE)
    env = {**os.environ, "HEADRACE_STATE_DIR": str(tmp_path / ".headrace")}

    def run(task: str, *inputs: str) -> dict[str, object]:
        command = [sys.executable, "-m", "steps", "run", "flow:pipeline", task, "--run-id", "r1"]
        command += ["--outputs-dir", str(tmp_path / "out" / task)]
        for name in inputs:
            command += ["--input", f"{name}.result=" + (tmp_path / "out" / name / "result").read_text()]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads((tmp_path / "out" / task / "_result.json").read_text())  # type: ignore[no-any-return]

    run("prep")
    trained = run("train", "prep")
    scored = run("score", "prep", "train")

    assert trained["records"]["hyperparameters"] == {"w": 2.5}  # type: ignore[index]
    output = scored["outputs"]["result"]  # type: ignore[index]
    assert output["rows"] == 3000 and output["format"] == "parquet"
    frame = pq.read_table(output["uri"].removeprefix("file://")).to_pandas()
    assert frame["y"].tolist() == [i / 10 * 2.5 for i in range(3000)]


def test_scoring_module_that_stands_alone_ships_without_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.backends.glue_code import score_reference

    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from pathlib import Path\nQUERY = (Path(__file__).parent / 'q.sql').read_text()\n"
    )
    (package / "q.sql").write_text("select 1")
    (package / "scoring.py").write_text("def score(batch, model):\n    return batch\n")
    (package / "tasks.py").write_text("from . import scoring\n\ndef score(batch, model):\n    return batch\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    assert score_reference("shop.scoring:score") == ("scoring:score", package / "scoring.py")
    assert score_reference("shop.tasks:score") == ("shop.tasks:score", package)


@pytest.mark.integration
def test_scoring_module_requirements_become_glue_additional_python_modules(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.storage.aws import client

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "needs_lightgbm.py").write_text(
        "glue_python_modules = ['lightgbm==4.6.0']\n\ndef score(batch, model):\n    return batch\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)
    write_output_where_the_job_would(aws_settings, 100)

    batch_infer(ctx, "needs_lightgbm:score", model, data)

    job = only_job(client("glue", aws_settings))
    assert job["DefaultArguments"]["--additional-python-modules"] == "lightgbm==4.6.0"


@pytest.mark.integration
def test_two_code_versions_run_as_two_jobs_and_neither_definition_changes(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.storage.aws import client

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "scoring_v2.py").write_text("def score(batch, model):\n    return batch\n")
    monkeypatch.syspath_prepend(str(tmp_path / "v2"))
    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)
    write_output_where_the_job_would(aws_settings, 100)
    glue = client("glue", aws_settings)

    batch_infer(ctx, score, model, data)
    (first,) = glue.get_jobs()["Jobs"]
    ctx.attempt = 2  # a retry that runs changed code
    batch_infer(ctx, "scoring_v2:score", model, data)

    jobs = {job["Name"]: job for job in glue.get_jobs()["Jobs"]}
    assert len(jobs) == 2 and all(name.startswith("headrace-demo-score-") for name in jobs)
    assert jobs[first["Name"]]["DefaultArguments"] == first["DefaultArguments"]
    zips = {job["DefaultArguments"]["--extra-py-files"] for job in jobs.values()}
    assert len(zips) == 2
    for name in jobs:
        (run,) = glue.get_job_runs(JobName=name)["JobRuns"]
        assert run["Arguments"]["--score"] in ("scoring_examples:score", "scoring_v2:score")


@pytest.mark.integration
def test_retry_finds_its_run_beyond_the_first_page_of_the_jobs_runs(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None
) -> None:
    """The pod died right after StartJobRun (no run record) and the job has 60 other runs."""
    from steps.storage.aws import client

    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)
    write_output_where_the_job_would(aws_settings, 100)
    ctx.attempt = 9
    batch_infer(ctx, score, model, data)  # creates the job
    glue = client("glue", aws_settings)
    name = only_job(glue)["Name"]
    for other in range(60):
        run_id = glue.start_job_run(JobName=name, Arguments={"--headrace-attempt": f"other/score/{other}"})["JobRunId"]
        while glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]["JobRunState"] != "SUCCEEDED":
            pass  # each read steps moto's run one state on; the job allows 10 concurrent runs
    ctx.attempt = 1
    batch_infer(ctx, score, model, data)
    ctx.store.delete_prefix(ctx.output_key("glue-run.json"))
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("glue-run.json")))
    first_page = glue.get_job_runs(JobName=name, MaxResults=50)["JobRuns"]
    assert len(first_page) == 50 and "r1/score/1" not in [r["Arguments"]["--headrace-attempt"] for r in first_page]

    batch_infer(ctx, score, model, data)

    runs = [r for p in glue.get_paginator("get_job_runs").paginate(JobName=name) for r in p["JobRuns"]]
    assert len(runs) == 62
    assert [r["Arguments"]["--headrace-attempt"] for r in runs].count("r1/score/1") == 1


@pytest.mark.integration
def test_scoring_module_that_does_not_import_is_one_error_before_anything_is_sent(
    tmp_path: Path, aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.storage.aws import client

    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "broken_scoring.py").write_text(
        "import not_installed_anywhere\nglue_python_modules = ['x==1']\n\ndef score(batch, model):\n    return batch\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "code"))
    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)

    with pytest.raises(UserError, match=r"score 'broken_scoring:score': .*not_installed_anywhere.*glue_python_modules"):
        batch_infer(ctx, "broken_scoring:score", model, data)

    assert client("glue", aws_settings).get_jobs()["Jobs"] == []


@pytest.mark.integration
def test_the_models_framework_version_is_pinned_on_the_glue_job_and_a_conflicting_pin_is_refused(
    tmp_path: Path, aws_settings: Settings, stepped_runs: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steps.backends.frameworks import RECORD_SUFFIX, framework_for, record
    from steps.storage.aws import client

    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)
    ctx.store.put_bytes(record(framework_for("sklearn", "1.2-1")), "demo/r1/train/model.tar.gz" + RECORD_SUFFIX)  # type: ignore[arg-type]
    write_output_where_the_job_would(aws_settings, 100)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "pins_other.py").write_text(
        "glue_python_modules = ['scikit-learn==1.5.2']\n\ndef score(batch, model):\n    return batch\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "code"))

    batch_infer(ctx, score, model, data)
    with pytest.raises(UserError, match=r"pins scikit-learn==1.5.2 but the model was trained with scikit-learn==1.2.1"):
        batch_infer(ctx, "pins_other:score", model, data)

    job = only_job(client("glue", aws_settings))
    assert job["DefaultArguments"]["--additional-python-modules"] == "scikit-learn==1.2.1"


# ----------------------------------------------------------------------------- acceptance: the example


@pytest.mark.spark
def test_example_model_trained_locally_scores_the_same_on_local_spark_with_the_glue_script_and_pins(
    tmp_path: Path,
) -> None:
    """The recipe stream's own training script and scoring function, end to end on this machine:
    training runs under the model's framework version (scikit-learn 1.2.1, the SageMaker 1.2-1
    container's), the model records it, and both the Arrow engine and the generated Glue script on
    real local Spark score under it; the pin the Glue job would get is that same version."""
    import datetime as dt

    from examples.recipe_stream import data as sample
    from examples.recipe_stream import scoring, tasks
    from steps.backends.frameworks import framework_for, read_local_framework
    from steps.backends.glue_cloud import python_modules, with_model_pin
    from steps.backends.glue_code import score_reference

    day = dt.date(2026, 3, 2)
    events = pa.concat_tables(sample.generate_events(day, rows=3000, seed=7))
    events = events.set_column(
        events.schema.get_field_index("outcome"), "outcome", events.column("outcome").cast(pa.string())
    )
    pq.write_table(events, tmp_path / "events.parquet")
    pq.write_table(pa.concat_tables(sample.generate_items(day, rows=3000, seed=7)), tmp_path / "items.parquet")
    settings = load_settings({"profile": "local", "artifact_root": str(tmp_path / "artifacts")})
    ctx = make_context(settings, pipeline="recipe-stream", task="train")
    training_data = ArtifactRef((tmp_path / "events.parquet").as_uri(), 0)

    model = tasks.train_model(ctx, training_data, retrain="always", train_weekday="monday")

    model_path = Path(model.uri.removeprefix("file://"))
    assert read_local_framework(model_path) == framework_for("sklearn", "1.2-1")
    spec, shipped = score_reference(scoring.score)
    pins = with_model_pin(
        python_modules(scoring.score, spec, shipped, "test"), read_local_framework(model_path), "test"
    )
    assert pins == ["scikit-learn==1.2.1"]

    scored = {}
    for engine in ("arrow", "spark"):
        score_ctx = make_context(settings.replace(glue_engine=engine), pipeline="recipe-stream", task=f"score-{engine}")
        ref = batch_infer(score_ctx, scoring.score, model, tmp_path / "items.parquet")
        assert ref.rows == pq.read_metadata(tmp_path / "items.parquet").num_rows
        frame = pq.read_table(Path(ref.uri.removeprefix("file://"))).to_pandas()
        scored[engine] = frame.sort_values("recipe_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(scored["spark"], scored["arrow"])
    assert set(scored["arrow"]["predicted_class"]) <= {"cook", "save", "skip"}
    assert scored["arrow"]["confidence"].between(0, 1).all()


# ----------------------------------------------------------------------------- parity: one suite, both sides


def play_glue(settings: Settings, endpoint: str, work: Path) -> None:
    """Do what Glue does with the run headrace started on moto (moto runs nothing): fetch the job's
    script and its --extra-py-files zip from S3, run that script on real local Spark with the
    run's arguments (inputs fetched from S3, the zip as the only code on PYTHONPATH), put the
    output where the run's --output names, then let moto's run succeed."""
    import subprocess
    import sys
    import time

    from steps.storage.aws import client

    glue, s3 = client("glue", settings), client("s3", settings)
    deadline = time.monotonic() + 60
    runs: list[dict[str, object]] = []
    while not runs and time.monotonic() < deadline:
        jobs = glue.get_jobs()["Jobs"]
        runs = glue.get_job_runs(JobName=jobs[0]["Name"])["JobRuns"] if jobs else []
        time.sleep(0.2)
    (job,) = glue.get_jobs()["Jobs"]
    (run,) = runs
    arguments = {**job["DefaultArguments"], **run["Arguments"]}  # type: ignore[dict-item]

    def fetch(uri: str, name: str) -> Path:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        s3.download_file(bucket, key, str(work / name))
        return work / name

    work.mkdir()
    script = fetch(job["Command"]["ScriptLocation"], "glue_script.py")
    bundle = fetch(arguments["--extra-py-files"], "job.zip")
    command = [sys.executable, str(script), "--JOB_ID", "j_1", "--JOB_RUN_ID", str(run["Id"])]
    command += ["--input", str(fetch(arguments["--input"], "input.parquet")), "--output", str(work / "out")]
    command += ["--model", str(fetch(arguments["--model"], "model.tar.gz")), "--score", arguments["--score"]]
    command += ["--batch-size", arguments["--batch-size"], "--spark-master", "local[2]"]
    command += ["--spark-conf", "spark.ui.enabled=false", "--spark-conf", "spark.sql.shuffle.partitions=2"]
    command += ["--spark-conf", "spark.driver.extraJavaOptions=-XX:+UseSerialGC -XX:TieredStopAtLevel=1"]
    if "--output-schema" in arguments:
        command += ["--output-schema", arguments["--output-schema"]]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PYTHONPATH": str(bundle), "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    bucket, _, prefix = arguments["--output"].removeprefix("s3://").partition("/")
    for path in sorted((work / "out").iterdir()):
        if not path.name.startswith((".", "_")) or path.name in (ROWS_FILE, "_SUCCESS"):
            s3.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    request = urllib.request.Request(
        f"{endpoint}/moto-api/state-manager/set-transition",
        json.dumps({"model_name": "glue::job_run", "transition": {"progression": "immediate"}}).encode(),
    )
    urllib.request.urlopen(request).read()


@pytest.fixture(params=["local", "cloud"])
def side(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which side ``run_batch`` scores on: local (the Arrow engine) or cloud (moto holds the Glue
    job and run, real local Spark runs the uploaded script, see :func:`play_glue`)."""
    if request.param == "cloud":
        endpoint = request.getfixturevalue("aws_env")
        request.getfixturevalue("s3_root")
        monkeypatch.setattr(handoff, "DEFAULT_BACKOFF", handoff.Backoff(initial=0.2, maximum=0.2))
        held = {"model_name": "glue::job_run", "transition": {"progression": "manual", "times": 10**9}}
        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/state-manager/set-transition", json.dumps(held).encode())
        ).read()
        request.addfinalizer(
            lambda: urllib.request.urlopen(
                urllib.request.Request(
                    f"{endpoint}/moto-api/state-manager/unset-transition",
                    json.dumps({"model_name": "glue::job_run"}).encode(),
                )
            ).read()
        )
    return str(request.param)


def library_model_archive(tmp_path: Path) -> Path:
    """The same linear scorer as a scikit-learn model: a class Glue workers can unpickle (the
    tests' own LinearModel lives in a module the job's zip does not ship)."""
    from sklearn.linear_model import LinearRegression

    folder = tmp_path / "library-model"
    folder.mkdir()
    model = LinearRegression()
    model.coef_, model.intercept_, model.n_features_in_ = np.array([2.0, -1.0]), 0.0, 2
    joblib.dump(model, folder / "model.joblib")
    clear_cache()
    return pack_dir(folder, tmp_path / "library-model.tar.gz")


def run_batch(side: str, tmp_path: Path, frame_rows: int, **options: object) -> tuple[ArtifactRef, pd.DataFrame]:
    """Score ``frame_rows`` rows with ``scoring_examples.score`` on ``side``; the output and its rows."""
    import threading

    write_input(tmp_path / "in.parquet", frame_rows, row_group_size=max(frame_rows // 3, 1))
    if side == "local":
        settings = load_settings({"profile": "local", "artifact_root": str(tmp_path / "artifacts")})
    else:
        settings = load_settings(
            {
                "profile": "aws",
                "artifact_root": f"s3://{BUCKET}/artifacts",
                "glue_role_arn": "arn:aws:iam::123456789012:role/headrace-glue",
            }
        )
    ctx = make_context(settings, task="score")
    data = ctx.store.put_file(
        tmp_path / "in.parquet", "demo/r1/prep/features.parquet", rows=frame_rows, format="parquet"
    )
    model = ctx.store.put_file(library_model_archive(tmp_path), "demo/r1/train/model.tar.gz", format="model")
    if side == "local":
        ref = batch_infer(ctx, score, model, data, **options)  # type: ignore[arg-type]
        return ref, ctx.artifact(ref).read_pandas()
    import os

    outcome: dict[str, object] = {}

    def score_on_glue() -> None:
        try:
            outcome["ref"] = batch_infer(ctx, score, model, data, **options)  # type: ignore[arg-type]
        except BaseException as error:  # reported by the main thread
            outcome["error"] = error

    worker = threading.Thread(target=score_on_glue)
    worker.start()
    try:
        play_glue(settings, os.environ["HEADRACE_AWS_ENDPOINT_URL"], tmp_path / "glue")
    finally:
        worker.join(timeout=120)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    ref = outcome["ref"]
    assert isinstance(ref, ArtifactRef)
    return ref, ctx.artifact(ref).read_pandas()


@pytest.mark.spark
@pytest.mark.integration
def test_batch_inference_scores_every_row_and_reports_rows_and_bytes_on_either_side(side: str, tmp_path: Path) -> None:
    ref, scored = run_batch(side, tmp_path, 3_000, output_schema={"id": "int64", "score": "double"})

    expected = expected_scores(pd.read_parquet(tmp_path / "in.parquet"))
    pd.testing.assert_frame_equal(scored.sort_values("id").reset_index(drop=True), expected)
    assert ref.rows == 3_000 and ref.format == "parquet" and ref.bytes > 0


@pytest.mark.integration
def test_a_bug_inside_the_hand_off_stays_a_bug_instead_of_a_retryable_provider_failure(
    tmp_path: Path, aws_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only botocore's errors are translated; a KeyError in headrace's own code must not become
    HandoffFailed (which Argo's retryStrategy would retry)."""
    from steps.backends import glue_cloud

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise KeyError("Command")

    monkeypatch.setattr(glue_cloud, "job_definition", broken)
    ctx = make_context(aws_settings, task="score")
    model, data = cloud_inputs(ctx, tmp_path)

    with pytest.raises(KeyError, match="Command"):
        batch_infer(ctx, score, model, data)
