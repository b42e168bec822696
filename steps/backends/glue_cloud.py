"""Batch inference's Glue side: one job per code version, its runs, and their output.

:func:`steps.backends.glue.batch_infer` hands off here on the aws profile (see that module's docstring for
the whole story); the local side stays in :mod:`steps.backends.glue`.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steps.backends.frameworks import Framework, read_model_framework
from steps.backends.glue_code import SHIPPED_DSL, ScoreFunction, score_reference
from steps.backends.glue_script import ROWS_FILE
from steps.backends.handoff import Phase, phase_of, poll, terminate_as_interrupt
from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, HandoffFailed, UserError
from steps.runtime.context import StepContext

#: Every Glue JobRunState (API reference, JobRun.JobRunState) mapped to ours.
GLUE_STATES: dict[str, Phase] = {
    "WAITING": Phase.PENDING,
    "STARTING": Phase.PENDING,
    "RUNNING": Phase.RUNNING,
    "STOPPING": Phase.RUNNING,
    "SUCCEEDED": Phase.SUCCEEDED,
    "STOPPED": Phase.CANCELLED,
    "FAILED": Phase.FAILED,
    "ERROR": Phase.FAILED,
    "EXPIRED": Phase.FAILED,
    "TIMEOUT": Phase.TIMEOUT,
}
GLUE_VERSION = "5.0"
#: The attempt's record of the Glue run it started, under its output prefix.
RUN_RECORD = "glue-run.json"


def job_name(pipeline: str, task: str, definition: Mapping[str, Any]) -> str:
    """One Glue job per pipeline task and code version: ``headrace-<pipeline>-<task>-<hash>``.

    The hash covers the whole definition (script, code zip, modules, role, Glue version; not the
    worker type and count, which travel with each run), so a definition is created once and never
    updated: two runs of different code at the same time run different jobs, each its own script.
    """
    canonical = {k: v for k, v in definition.items() if k not in ("WorkerType", "NumberOfWorkers")}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:12]
    return f"headrace-{pipeline}-{task}"[:242] + f"-{digest}"


def run_glue(
    ctx: StepContext,
    score: ScoreFunction | str,
    model: ArtifactRef,
    data: ArtifactRef,
    worker_type: str,
    number_of_workers: int,
    batch_size: int,
    output_schema: dict[str, str] | None,
) -> ArtifactRef:
    from steps.storage.aws import client, provider_errors, translate

    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    role = ctx.settings.glue_role_arn
    if not role:
        raise ConfigError(
            f"{where}: glue_role_arn is not set; set HEADRACE_GLUE_ROLE_ARN=arn:aws:iam::<account>:role/<role> "
            "or glue_role_arn in headrace.toml"
        )
    for label, ref in (("model", model), ("data", data)):
        if not ref.uri.startswith("s3://"):
            raise UserError(
                f"{where}: {label} {ref.uri} is not on S3; on the aws profile inputs must be s3:// artifacts"
            )
    spec, shipped = score_reference(score)
    modules = python_modules(score, spec, shipped, where)
    chosen_type = ctx.instance_type(worker_type) or worker_type
    workers = ctx.instance_count(number_of_workers)
    output_uri = ctx.store.uri_for(ctx.output_key("scores")).rstrip("/")
    token = f"{ctx.run_id}/{ctx.task}/{ctx.attempt}"
    glue = client("glue", ctx.settings)

    arguments = {
        "--input": data.uri,
        "--output": output_uri,
        "--model": model.uri,
        "--score": spec,
        "--batch-size": str(batch_size),
        "--headrace-attempt": token,
    }
    if output_schema:
        arguments["--output-schema"] = json.dumps(output_schema)
    name = ""
    try:
        modules = with_model_pin(modules, read_model_framework(ctx.store, model.uri), where)
        script_uri, zip_uri = _upload_code(ctx, shipped)
        definition = job_definition(role, script_uri, zip_uri, modules, chosen_type, workers)
        name = job_name(ctx.pipeline, ctx.task, definition)
        run_id = _existing_run(ctx, glue, name, token)
        if run_id:
            ctx.log.info("attaching to Glue run %s of job %s (started by an earlier try)", run_id, name)
        else:
            _ensure_job(glue, name, definition)
            run_id = glue.start_job_run(
                JobName=name, Arguments=arguments, WorkerType=chosen_type, NumberOfWorkers=workers
            )["JobRunId"]
            ctx.store.put_bytes(json.dumps({"job": name, "run_id": run_id}).encode(), ctx.output_key(RUN_RECORD))
            ctx.log.info("started Glue run %s of job %s on %d x %s", run_id, name, workers, chosen_type)
    except provider_errors() as error:
        raise translate(error, f"{where}: glue job {name or ctx.task}") from error
    ctx.record(
        glue_job=name, glue_run_id=run_id, worker_type=chosen_type, number_of_workers=workers, batch_size=batch_size
    )
    try:
        with terminate_as_interrupt():
            final = wait_for_run(ctx, glue, name, run_id)
    except KeyboardInterrupt:
        ctx.log.warning("interrupted: stopping Glue run %s of job %s", run_id, name)
        glue.batch_stop_job_run(JobName=name, JobRunIds=[run_id])
        raise
    check_run(where, final)
    rows, size = output_size(ctx, output_uri)
    return ArtifactRef(output_uri + "/", size, rows, "parquet")


def _existing_run(ctx: StepContext, glue: Any, name: str, token: str) -> str | None:
    """The live or finished run this attempt already started, so a retried pod attaches instead of
    starting twice.

    First the attempt's own record (``glue-run.json`` under its output prefix, written right after
    StartJobRun: one read, whatever the job's history); then, for a pod that died between the two
    calls, every page of GetJobRuns for the attempt's token.
    """
    from steps.storage.aws import error_code, provider_errors

    record = ctx.store.uri_for(ctx.output_key(RUN_RECORD))
    candidates: list[dict[str, Any]] = []
    if ctx.store.exists(record):
        known = json.loads(ctx.store.read_bytes(record))
        if known.get("job") == name:
            try:
                candidates = [glue.get_job_run(JobName=name, RunId=known["run_id"])["JobRun"]]
            except provider_errors() as error:
                if error_code(error) != "EntityNotFoundException":
                    raise
    if not candidates:
        try:
            for page in glue.get_paginator("get_job_runs").paginate(JobName=name):
                candidates += page.get("JobRuns", [])
        except provider_errors() as error:
            if error_code(error) == "EntityNotFoundException":
                return None
            raise
    for run in candidates:
        phase = GLUE_STATES.get(run.get("JobRunState", ""), Phase.RUNNING)
        if run.get("Arguments", {}).get("--headrace-attempt") == token and phase in (
            Phase.PENDING,
            Phase.RUNNING,
            Phase.SUCCEEDED,
        ):
            return str(run["Id"])
    return None


def _bundle_files(shipped: Path | None) -> list[tuple[Path, str]]:
    """(file, name in the zip) for the headrace modules the script needs and the user's code."""
    package = Path(__file__).resolve().parents[1]  # the whole steps package: the script imports its rooms
    files = [(path, f"steps/{path.relative_to(package).as_posix()}") for path in sorted(package.rglob("*.py"))]
    files += [(package.parent / name, name) for name in SHIPPED_DSL if (package.parent / name).is_file()]
    if shipped is not None and shipped.is_dir():
        files += [(path, str(Path(shipped.name) / path.relative_to(shipped))) for path in sorted(shipped.rglob("*.py"))]
    elif shipped is not None:
        files.append((shipped, shipped.name))
    return files


def _upload_code(ctx: StepContext, shipped: Path | None) -> tuple[str, str]:
    """Upload the job script and the code zip under a key named by their content hash.

    Content-addressed keys keep the Glue job definition unchanged from run to run while the code
    is unchanged (no ``UpdateJob`` at all), and let runs of different code coexist.
    """
    here = Path(__file__).resolve().parent
    files = _bundle_files(shipped)
    digest = hashlib.sha256()
    for path, name in [(here / "glue_script.py", "glue_script.py"), *files]:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    prefix = f"_glue/{digest.hexdigest()[:16]}"
    script_uri = ctx.store.uri_for(f"{prefix}/glue_script.py")
    zip_uri = ctx.store.uri_for(f"{prefix}/headrace_job.zip")
    if not ctx.store.exists(zip_uri):
        with tempfile.TemporaryDirectory(prefix="headrace-glue-") as tmp:
            bundle = Path(tmp) / "headrace_job.zip"
            with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
                for path, name in files:
                    archive.write(path, name)
            script_uri = ctx.store.put_file(here / "glue_script.py", f"{prefix}/glue_script.py").uri
            zip_uri = ctx.store.put_file(bundle, f"{prefix}/headrace_job.zip").uri
    return script_uri, zip_uri


def python_modules(score: ScoreFunction | str, spec: str, shipped: Path | None, where: str) -> list[str]:
    """The scoring module's ``glue_python_modules``; a module that does not import here is one
    clear error (its requirements would otherwise silently never reach Glue)."""
    from steps.backends.glue_script import load_callable

    if callable(score) and not isinstance(score, str):
        module = sys.modules.get(getattr(score, "__module__", "") or "")
    else:
        module = sys.modules.get(spec.partition(":")[0])
    if module is None:
        target = f"{shipped}:{spec.partition(':')[2]}" if shipped is not None and shipped.is_file() else spec
        try:
            module = sys.modules[load_callable(target).__module__]
        except UserError as error:
            raise UserError(
                f"{where}: score {spec!r}: {error}; fix the import so its glue_python_modules reach Glue"
            ) from error
    return [str(item) for item in getattr(module, "glue_python_modules", [])]


def with_model_pin(modules: list[str], framework: Framework | None, where: str) -> list[str]:
    """``modules`` plus the model's framework pin (``scikit-learn==1.2.1``) from the model's
    framework record; a module list that pins another version of it is one clear error."""
    if framework is None:
        return modules
    package, version = framework.package, framework.package_version
    for item in modules:
        name, _, pinned = item.partition("==")
        if name.strip().lower() == package and pinned and pinned.strip() != version:
            raise UserError(
                f"{where}: glue_python_modules pins {item} but the model was trained with {package}=={version}; "
                f"pin {package}=={version} or retrain"
            )
        if name.strip().lower() == package:
            return modules
    return [*modules, f"{package}=={version}"]


def job_definition(
    role: str, script_uri: str, zip_uri: str, modules: list[str], worker_type: str, workers: int
) -> dict[str, Any]:
    """The CreateJob definition for one code version."""
    default_arguments = {
        "--extra-py-files": zip_uri,
        "--job-language": "python",
        "--enable-metrics": "true",
        "--enable-continuous-cloudwatch-log": "true",
    }
    if modules:
        default_arguments["--additional-python-modules"] = ",".join(modules)
    return {
        "Role": role,
        "Command": {"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"},
        "DefaultArguments": default_arguments,
        "GlueVersion": GLUE_VERSION,
        "WorkerType": worker_type,
        "NumberOfWorkers": workers,
        "MaxRetries": 0,  # Argo's retryStrategy owns retries, with the control room's sizing
        "ExecutionProperty": {"MaxConcurrentRuns": 10},
    }


def _ensure_job(glue: Any, name: str, definition: Mapping[str, Any]) -> None:
    """Create the job of this code version unless it exists (never updated: see :func:`job_name`)."""
    from steps.storage.aws import error_code, provider_errors

    try:
        glue.get_job(JobName=name)
        return
    except provider_errors() as error:
        if error_code(error) != "EntityNotFoundException":
            raise
    try:
        glue.create_job(Name=name, Description="headrace batch scoring", Tags={"headrace": "batch_infer"}, **definition)
    except provider_errors() as error:
        if error_code(error) != "AlreadyExistsException":  # a concurrent run of the same code created it
            raise


def wait_for_run(ctx: StepContext, glue: Any, name: str, run_id: str) -> dict[str, Any]:
    """Poll the run with backoff until it ends, logging each state change."""
    from steps.storage.aws import provider_errors, translate

    seen: list[str] = []

    def describe() -> dict[str, Any]:
        try:
            run: dict[str, Any] = glue.get_job_run(JobName=name, RunId=run_id)["JobRun"]
        except provider_errors() as error:
            raise translate(error, f"glue get_job_run {name}/{run_id}") from error
        return run

    def report(run: dict[str, Any]) -> None:
        state = str(run.get("JobRunState", ""))
        if not seen or seen[-1] != state:
            seen.append(state)
            known = "" if state in GLUE_STATES else " (unknown to headrace: treated as running)"
            ctx.log.info("Glue run %s: %s%s", run_id, state, known)

    return poll(describe, lambda run: phase_of(GLUE_STATES, str(run.get("JobRunState", "")), "glue"), on_update=report)


def check_run(where: str, run: Mapping[str, Any]) -> None:
    """Raise :class:`HandoffFailed` with Glue's ``ErrorMessage`` unless the run succeeded."""
    state = str(run.get("JobRunState", ""))
    if GLUE_STATES.get(state) is not Phase.SUCCEEDED:
        reason = str(run.get("ErrorMessage") or state)
        raise HandoffFailed(
            f"{where}: Glue run {run.get('Id')} of job {run.get('JobName')} ended {state}: {reason}", reason=reason
        )


def output_size(ctx: StepContext, output_uri: str) -> tuple[int, int]:
    """Rows (from the ``_rows`` file the job writes last) and bytes (sum of the Parquet objects)."""
    from steps.storage.aws import client, error_code, provider_errors, translate

    bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
    s3 = client("s3", ctx.settings)
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/{ROWS_FILE}")["Body"].read()
    except provider_errors() as error:
        if error_code(error) in ("NoSuchKey", "404"):
            raise HandoffFailed(
                f"pipeline {ctx.pipeline}, task {ctx.task}: the Glue run reported success but wrote no "
                f"{output_uri}/{ROWS_FILE}; the output is incomplete, re-run the task",
                reason="output incomplete",
            ) from error
        raise translate(error, f"reading {output_uri}/{ROWS_FILE}") from error
    size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        size += sum(int(item["Size"]) for item in page.get("Contents", []) if item["Key"].endswith(".parquet"))
    return int(body.decode().strip() or 0), size
