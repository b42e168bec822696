"""The recipe stream on the ``aws`` profile: moto for S3, SageMaker, Glue and Athena, a local
BigQuery REST server, a local Slack API server, the embedded control room.

The test plays Argo: it runs every task, in the compiled DAG's order, through
:func:`steps.runtime.task.run_task` (what ``python -m steps run`` calls in each pod) with the run id,
parameters and upstream output references Argo would pass, and asks the control room for the
three ``sizing="auto"`` follow-ups exactly as the sizing node does (``build_request`` +
``size_with_fallback``). Everything headrace sends goes over the wire to the servers.

Where each flow stops, and what is asserted instead:

- **BigQuery**: nothing stops. The server runs the pipeline's SQL (``sql/*.sql``) on DuckDB over
  the generator's tables and pages rows back to the official client; asserted: the two query jobs
  with their SQL text and the typed ``run_date`` parameter, the dry runs, and rows landing in S3.
- **SageMaker**: moto records ``CreateTrainingJob`` and reports it ``Completed`` at once, but runs
  no container and writes no model. The test does the container's part before the task runs: it
  executes ``model/train.py`` under the container contract on the extract's S3 output and puts
  ``model.tar.gz`` where SageMaker writes it (``<S3OutputPath>/<job>/output/``). Asserted: the
  job's image, role, channel URI, hyperparameters and code upload; the task returning that model.
- **Glue**: moto stores the job and walks the run to ``SUCCEEDED`` but never executes the script.
  The test does the job's part: it scores the items with :func:`examples.recipe_stream.scoring.score`
  (the function the script calls) and writes part files and ``_rows`` where the job writes them.
  Asserted: the job definition (script, code zip, worker type and count) and the run's arguments.
- **Athena**: moto accepts the queries and the Glue table for ``scored`` but runs no SQL. The test
  computes each answer with the same SQL on DuckDB over the scored rows and hands it to moto's
  ``/moto-api/static/athena/query-results`` (as Athena would return it) just before each query.
  Asserted: every query's text, database, workgroup, output location and ExecutionParameters,
  the ``scored`` external table's location, and the typed results headrace stored in S3.
- **Follow-ups, summary**: nothing stops; the sizes come from the control room and the summary is
  posted to the local Slack server (``chat.postMessage``).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.recipe_stream import data, pipeline, scoring, sql
from steps.core.contract import ArtifactRef, SizingDecision
from steps.core.settings import Settings, load_settings
from tests.conftest import free_port
from tests.integration.bigquery_server import BigQueryServer
from tests.notify.slack_server import VALID_TOKEN, SlackServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "recipe-lake"
ROOT = f"s3://{BUCKET}/headrace"
RUN_ID = "recipe-stream-aws-1"
DAY = dt.date(2026, 12, 1)  # an 80/15/5 day
ITEMS = 2_000
SIZED = {"cook": "shopping-lists", "save": "reminders", "skip": "refresh"}
ATHENA_TYPES = {"int64": "bigint", "double": "double", "float": "float", "string": "varchar", "large_string": "varchar"}


@dataclass
class Flow:
    """What the run produced and what every server saw."""

    outputs: dict[str, dict[str, ArtifactRef]] = field(default_factory=dict)
    sizing: dict[str, SizingDecision] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    bigquery_jobs: list[dict[str, Any]] = field(default_factory=list)
    bigquery_requests: list[tuple[str, str]] = field(default_factory=list)
    training_job: dict[str, Any] = field(default_factory=dict)
    glue_job: dict[str, Any] = field(default_factory=dict)
    glue_runs: list[dict[str, Any]] = field(default_factory=list)
    glue_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    athena: dict[str, dict[str, Any]] = field(default_factory=dict)
    athena_answers: dict[str, pa.Table] = field(default_factory=dict)
    stored: dict[str, Any] = field(default_factory=dict)
    s3_keys: list[str] = field(default_factory=list)
    slack_posts: list[dict[str, Any]] = field(default_factory=list)
    model_uri: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    glue_code_files: list[str] = field(default_factory=list)
    training_source_files: list[str] = field(default_factory=list)


class Providers:
    """The parts moto does not play, done the way the real service would, plus its inspection."""

    def __init__(self, settings: Settings, moto: str, work: Path) -> None:
        from steps.storage.aws import client

        self.settings, self.moto, self.work = settings, moto, work
        self.s3 = client("s3", settings)
        self.sagemaker = client("sagemaker", settings)
        self.glue = client("glue", settings)
        self.athena = client("athena", settings)

    def download(self, ref: ArtifactRef, name: str) -> Path:
        from steps.storage.artifacts import store_for_uri

        target = self.work / name
        store = store_for_uri(ref.uri, region=self.settings.aws_region, endpoint_url=self.settings.aws_endpoint_url)
        return store.get_file(ref.uri, target)

    def key(self, uri: str) -> str:
        return uri.removeprefix(f"s3://{BUCKET}/")

    def train_like_sagemaker(self, events: ArtifactRef) -> str:
        """Run the entry script under the container contract and put the model where the job would."""
        from steps.backends.model_io import pack_dir
        from steps.backends.sagemaker import training_job_name

        channel = self.work / "opt-ml" / "input" / "data" / "train"
        channel.mkdir(parents=True)
        self.download(events, "events").replace(channel / "events.parquet")
        model_dir = self.work / "opt-ml" / "model"
        env = {
            **os.environ,
            "SM_CHANNEL_TRAIN": str(channel),
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(self.work / "opt-ml" / "output" / "data"),
            "SM_HPS": json.dumps({"max_iter": 15, "label": "outcome", "seed": 7}),
        }
        script = Path(scoring.__file__).parent / "model" / "train.py"
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        archive = pack_dir(model_dir, self.work / "model.tar.gz")
        job = training_job_name("recipe-stream", "train", RUN_ID, 1)
        uri = f"{ROOT}/recipe-stream/{RUN_ID}/train/sagemaker/{job}/output/model.tar.gz"
        self.s3.put_object(Bucket=BUCKET, Key=self.key(uri), Body=archive.read_bytes())
        return uri

    def score_like_glue(self, items: ArtifactRef, model: ArtifactRef) -> Path:
        """Score every item with the pipeline's scoring function and write the job's output files."""
        from steps.backends.model_io import load_model

        frame = pd.read_parquet(self.download(items, "items.parquet"))
        scored = scoring.score(frame, load_model(self.download(model, "model.tar.gz")))
        local = self.work / "scored"
        local.mkdir()
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), local / "part-00000.snappy.parquet")
        prefix = f"headrace/recipe-stream/{RUN_ID}/score/scores"
        self.s3.upload_file(str(local / "part-00000.snappy.parquet"), BUCKET, f"{prefix}/part-00000.snappy.parquet")
        self.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/_SUCCESS", Body=b"")
        self.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/_rows", Body=str(len(scored)).encode())
        return local

    def answer_like_athena(self, query: str, params: dict[str, Any], scored: Path) -> pa.Table:
        """The query's result computed on DuckDB, handed to moto as Athena's result set."""
        from steps.backends.sql_local import LocalSql, name_positional_parameters

        engine = LocalSql("athena", tables={"scored": scored}, default_database="default")
        table, _ = engine.run(name_positional_parameters(query, "athena", list(params)), params)
        header = {"Data": [{"VarCharValue": name} for name in table.column_names]}
        rows = [
            {"Data": [{} if value is None else {"VarCharValue": str(value)} for value in row.values()]}
            for row in table.to_pylist()
        ]
        columns = [
            {"Name": f.name, "Label": f.name, "Type": ATHENA_TYPES[str(f.type)], "Nullable": "UNKNOWN"}
            for f in table.schema
        ]
        body = json.dumps({"results": [{"rows": [header, *rows], "column_info": columns}]}).encode()
        request = urllib.request.Request(
            f"{self.moto}/moto-api/static/athena/query-results",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        assert urllib.request.urlopen(request).status == 201
        return table


def _run_flow(settings: Settings, moto: str, bigquery: BigQueryServer, slack: SlackServer, work: Path) -> Flow:
    from control_room.embedded import connect
    from steps.runtime.client import size_with_fallback
    from steps.runtime.sizing_node import build_request
    from steps.runtime.task import run_task

    providers = Providers(settings, moto, work)
    providers.s3.create_bucket(Bucket=BUCKET)
    flow = Flow()
    room = connect(settings)
    available: dict[tuple[str, str], ArtifactRef] = {}
    scored_local: Path | None = None
    for name in pipeline.topological_order():
        task = pipeline.task(name)
        started = time.perf_counter()
        reads = {(ref.task, ref.output): available[(ref.task, ref.output)] for ref in task.input_refs()}
        if name == "train":
            flow.model_uri = providers.train_like_sagemaker(available[("extract-events", "result")])
        elif name == "score":
            scored_local = providers.score_like_glue(
                available[("extract-items", "result")], available[("train", "result")]
            )
        elif name == "class-mix" or name.startswith("items-"):
            assert scored_local is not None
            arguments = task.arguments
            flow.athena_answers[name] = providers.answer_like_athena(
                arguments["sql"], dict(arguments.get("params") or {}), scored_local
            )
        decision = None
        if task.sizing == "auto":
            decision = size_with_fallback(room, build_request(pipeline, name, RUN_ID, 1, reads), lambda line: None)
            flow.sizing[name] = decision
        result = run_task(
            pipeline,
            name,
            run_id=RUN_ID,
            settings=settings,
            params={"run_date": DAY.isoformat()},
            inputs=dict(available),
            sizing=decision,
        )
        flow.outputs[name] = result.outputs
        flow.seconds[name] = time.perf_counter() - started
        flow.records[name] = dict(result.records)
        for output, ref in result.outputs.items():
            available[(name, output)] = ref

    flow.bigquery_jobs = [job for job in bigquery.jobs.values() if "query" in job.get("configuration", {})]
    flow.bigquery_requests = list(bigquery.requests)
    flow.training_job = providers.sagemaker.describe_training_job(TrainingJobName=flow.records["train"]["training_job"])
    flow.glue_job = providers.glue.get_job(JobName=flow.records["score"]["glue_job"])["Job"]
    submit = json.loads(flow.training_job["HyperParameters"]["sagemaker_submit_directory"])
    source = providers.s3.get_object(Bucket=BUCKET, Key=providers.key(submit))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(source), mode="r:gz") as archive:
        flow.training_source_files = sorted(archive.getnames())
    code_key = providers.key(flow.glue_job["DefaultArguments"]["--extra-py-files"])
    code = providers.s3.get_object(Bucket=BUCKET, Key=code_key)["Body"].read()
    flow.glue_code_files = zipfile.ZipFile(io.BytesIO(code)).namelist()
    flow.glue_runs = providers.glue.get_job_runs(JobName=flow.records["score"]["glue_job"])["JobRuns"]
    flow.glue_tables = {t["Name"]: t for t in providers.glue.get_tables(DatabaseName="default")["TableList"]}
    for name, record in flow.records.items():
        if "athena_query_execution_id" in record:
            flow.athena[name] = providers.athena.get_query_execution(
                QueryExecutionId=record["athena_query_execution_id"]
            )["QueryExecution"]
    for name, outputs in flow.outputs.items():
        for output, ref in outputs.items():
            if ref.format == "parquet" and not ref.uri.endswith("/"):
                body = providers.s3.get_object(Bucket=BUCKET, Key=providers.key(ref.uri))["Body"].read()
                flow.stored[f"{name}.{output}"] = pq.read_table(io.BytesIO(body))
            elif ref.format == "json":
                body = providers.s3.get_object(Bucket=BUCKET, Key=providers.key(ref.uri))["Body"].read()
                flow.stored[f"{name}.{output}"] = json.loads(body)
    paginator = providers.s3.get_paginator("list_objects_v2")
    flow.s3_keys = sorted(
        item["Key"] for page in paginator.paginate(Bucket=BUCKET) for item in page.get("Contents", [])
    )
    # A step's message is queued (ctx.notify), never posted from the step: what the runner's
    # notifier does at a run's end, move it into the outbox and send it, happens here.
    from control_room.notifications.notifier import build_notifier

    notifier = build_notifier(settings, check=False, quiet=True, background=False)
    notifier.ingest_spooled()
    notifier.flush(ignore_backoff=True)
    flow.slack_posts = slack.state.posted()
    return flow


@pytest.fixture(scope="module")
def flow(moto_server: str) -> Iterator[Flow]:
    from steps.backends import athena, handoff

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    with tempfile.TemporaryDirectory(prefix="recipe-aws-") as tmp, pytest.MonkeyPatch.context() as patch:
        work = Path(tmp)
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(key, value)
        patch.setattr(handoff, "DEFAULT_BACKOFF", handoff.Backoff(initial=0.01, maximum=0.05))
        patch.setattr(athena, "BACKOFF", handoff.Backoff(initial=0.01, maximum=0.05))
        tables = work / "warehouse"
        data.write_day(tables, DAY, rows=ITEMS)
        slack = SlackServer(free_port()).start()
        try:
            with BigQueryServer(tables, project="recipes-prod", page_size=5_000) as bigquery:
                settings = load_settings(
                    {
                        "profile": "aws",
                        "state_dir": str(work / ".headrace"),
                        "artifact_root": ROOT,
                        "aws_region": "us-east-1",
                        "aws_endpoint_url": moto_server,
                        "sagemaker_role_arn": "arn:aws:iam::123456789012:role/recipe-training",
                        "glue_role_arn": "arn:aws:iam::123456789012:role/recipe-glue",
                        "athena_workgroup": "primary",
                        "bigquery_project": "recipes-prod",
                        "bigquery_endpoint": bigquery.url,
                        "slack_token": VALID_TOKEN,
                        "slack_api_url": slack.api_url,
                        "slack_channel": "#ml-recipes",
                    },
                    environ={},
                    config_file=work / "absent.toml",
                )
                yield _run_flow(settings, moto_server, bigquery, slack, work)
        finally:
            slack.stop()


def test_sample_data_is_left_to_the_real_warehouse_on_aws(flow: Flow) -> None:
    assert flow.stored["sample-data.result"] == {"profile": "aws", "tables": {}, "written": False}


def test_bigquery_receives_both_extracts_with_their_sql_and_a_typed_run_date(flow: Flow) -> None:
    queries = {job["configuration"]["query"]["query"]: job for job in flow.bigquery_jobs}
    for name in ("events", "items"):
        job = queries[sql(name)]
        parameters = job["configuration"]["query"]["queryParameters"]
        assert [(p["name"], p["parameterValue"]["value"]) for p in parameters] == [("run_date", DAY.isoformat())]
        assert job["configuration"]["query"].get("useLegacySql") is False
    # Each extract makes a dry run (its byte estimate is recorded), then the query job.
    assert flow.bigquery_requests.count(("POST", "/projects/recipes-prod/jobs")) == 4
    # ...and every other call pages the results of those two query jobs (jobs.getQueryResults).
    reads = [path for method, path in flow.bigquery_requests if method != "POST"]
    assert all(path.startswith("/projects/recipes-prod/queries/") for path in reads), reads
    assert {path.rsplit("/", 1)[-1] for path in reads} == {job["jobReference"]["jobId"] for job in flow.bigquery_jobs}
    for name in ("extract-events", "extract-items"):
        assert flow.records[name]["bigquery_bytes_estimate"] > 0
    yesterday = DAY - dt.timedelta(days=1)
    assert flow.outputs["extract-events"]["result"].rows == data.event_rows(yesterday, ITEMS)
    assert flow.outputs["extract-items"]["result"].rows == ITEMS
    assert flow.stored["extract-items.result"].num_rows == ITEMS


def test_sagemaker_gets_the_training_job_and_its_model_is_what_the_task_returns(flow: Flow) -> None:
    job = flow.training_job
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert job["RoleArn"] == "arn:aws:iam::123456789012:role/recipe-training"
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    channel = job["InputDataConfig"][0]
    assert channel["ChannelName"] == "train"
    events_uri = flow.outputs["extract-events"]["result"].uri
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] in (events_uri, events_uri.rsplit("/", 1)[0] + "/")
    hps = job["HyperParameters"]
    assert hps["sagemaker_program"] == '"train.py"'
    assert (hps["max_iter"], hps["label"]) == ("15", '"outcome"')
    assert json.loads(hps["sagemaker_submit_directory"]).startswith(f"{ROOT}/recipe-stream/{RUN_ID}/train/")
    assert flow.training_source_files == ["train.py"], "the entry script's folder is the job's source"
    model = flow.outputs["train"]["result"]
    assert model.uri == flow.model_uri and model.format == "model" and model.bytes > 0
    assert flow.records["train"]["trained"] is True
    assert "headrace/recipe-stream/models/latest.json" in flow.s3_keys


def test_glue_gets_the_scoring_job_with_its_code_and_the_run_reads_back_every_scored_row(flow: Flow) -> None:
    job = flow.glue_job
    assert job["Role"] == "arn:aws:iam::123456789012:role/recipe-glue"
    assert job["GlueVersion"] == "5.0"
    script, code = job["Command"]["ScriptLocation"], job["DefaultArguments"]["--extra-py-files"]
    assert script.endswith("/glue_script.py") and script.removeprefix(f"s3://{BUCKET}/") in flow.s3_keys
    assert code.removeprefix(f"s3://{BUCKET}/") in flow.s3_keys
    [run] = flow.glue_runs
    module = run["Arguments"]["--score"].removesuffix(":score")
    assert module.endswith("scoring")
    assert module.replace(".", "/") + ".py" in flow.glue_code_files, "the scoring module ships with the job"
    assert run["JobRunState"] == "SUCCEEDED"
    assert run["Arguments"]["--model"] == flow.outputs["train"]["result"].uri
    assert run["Arguments"]["--input"] == flow.outputs["extract-items"]["result"].uri
    assert (run["WorkerType"], run["NumberOfWorkers"]) == ("G.1X", 2)
    scored = flow.outputs["score"]["result"]
    assert scored.rows == ITEMS and scored.uri == run["Arguments"]["--output"] + "/"


def test_athena_gets_every_query_with_its_parameters_over_the_scored_table(flow: Flow) -> None:
    assert set(flow.athena) == {"class-mix", "items-cook", "items-save", "items-skip"}
    assert flow.athena["class-mix"]["Query"] == sql("class_mix")
    for outcome in SIZED:
        execution = flow.athena[f"items-{outcome}"]
        assert execution["ExecutionParameters"] == [f"'{outcome}'"]
        assert execution["QueryExecutionContext"]["Database"] == "default"
        assert execution["WorkGroup"] == "primary"
        assert execution["ResultConfiguration"]["OutputLocation"].startswith(
            f"{ROOT}/recipe-stream/{RUN_ID}/items-{outcome}/"
        )
    table = flow.glue_tables["scored"]
    assert table["StorageDescriptor"]["Location"] == flow.outputs["score"]["result"].uri
    assert {c["Name"] for c in table["StorageDescriptor"]["Columns"]} == set(scoring.OUTPUT_COLUMNS)


def test_athena_results_are_stored_typed_and_split_the_catalogue_by_class(flow: Flow) -> None:
    mix = flow.stored["class-mix.result"]
    assert mix.equals(flow.athena_answers["class-mix"].cast(mix.schema))
    counts = dict(zip(mix.column("predicted_class").to_pylist(), mix.column("items").to_pylist(), strict=True))
    assert sum(counts.values()) == ITEMS
    expected = data.class_counts(DAY, ITEMS)
    for outcome in SIZED:
        stored = flow.stored[f"items-{outcome}.result"]
        assert stored.num_rows == counts[outcome] == flow.outputs[f"items-{outcome}"]["result"].rows
        assert set(stored.column("predicted_class").to_pylist()) == {outcome}
        assert abs(counts[outcome] - expected[outcome]) <= ITEMS * 0.01


def test_follow_ups_run_at_the_sizes_the_control_room_chose_from_their_class_s_rows(flow: Flow) -> None:
    from steps.core.quantities import memory_bytes

    memory = {}
    for outcome, action in SIZED.items():
        decision = flow.sizing[action]
        assert decision.source != "declared" and decision.reason
        report = flow.stored[f"{action}.report"]
        assert report["size"]["memory"] == decision.memory and report["size"]["reason"] == decision.reason
        assert report["rows"] == flow.outputs[f"items-{outcome}"]["result"].rows
        assert flow.outputs[action]["actions"].rows == report["rows"]
        assert flow.outputs[action]["actions"].uri.startswith(f"{ROOT}/recipe-stream/{RUN_ID}/{action}/")
        assert decision.memory
        memory[outcome] = memory_bytes(decision.memory)
    assert memory["cook"] > memory["save"] >= memory["skip"], memory


def test_the_summary_is_posted_to_slack_with_rows_sizes_and_outputs(flow: Flow) -> None:
    [post] = flow.slack_posts
    assert post["channel"] == "#ml-recipes"
    assert post["text"] == f"recipe-stream {DAY.isoformat()}: {ITEMS:,} items scored"
    body = json.dumps(post["blocks"])
    for action in SIZED.values():
        assert action in body
        assert flow.outputs[action]["actions"].uri in body
    summary = flow.stored["summary.result"]
    assert summary["sent_to"] == "slack #ml-recipes"
    assert {outcome: entry["rows"] for outcome, entry in summary["classes"].items()} == {
        outcome: flow.outputs[f"items-{outcome}"]["result"].rows for outcome in SIZED
    }


def test_every_output_is_recorded_under_the_run_s_s3_prefix(flow: Flow) -> None:
    prefix = f"headrace/recipe-stream/{RUN_ID}/"
    for name, outputs in flow.outputs.items():
        for output, ref in outputs.items():
            if name == "train":
                continue  # the model lives where SageMaker wrote it, under the task's prefix
            key = ref.uri.removeprefix(f"s3://{BUCKET}/")
            assert key.startswith(prefix + f"{name}/"), (name, output, ref.uri)
            assert any(k == key or k.startswith(key.rstrip("/") + "/") for k in flow.s3_keys), (name, output)
    assert flow.outputs["train"]["result"].uri.startswith(f"{ROOT}/recipe-stream/{RUN_ID}/train/")
