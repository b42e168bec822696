"""Batch inference: one scoring function, run by Glue (PySpark) in the cloud or locally.

The user writes ``score(batch: pandas.DataFrame, model) -> pandas.DataFrame``; :func:`batch_infer`
runs it over every row of a Parquet input and returns the scored Parquet dataset (a folder of part
files) with its size and row count.

* **aws profile**: the job script (:mod:`steps.glue_script`, a plain ``SparkSession`` program) is
  uploaded under a content-addressed prefix with a zip of the user's module and the few headrace
  modules the script needs (``--extra-py-files``). The Glue job ``headrace-<pipeline>-<task>-<hash>``
  is created once per code version (:func:`job_name`: never updated, so concurrent runs of
  different code never share a script), a run is started with the worker type and count from the
  control room when sized (or, on a retry of the same attempt, the earlier run is attached to:
  :func:`_existing_run`), polled with backoff and mapped through :data:`GLUE_STATES`. Success is
  proven by the ``_rows`` file the script writes last; the bytes are the sum of the output
  objects. A scoring module may list pip requirements in a module attribute
  ``glue_python_modules = ["lightgbm==4.6.0"]`` (sent as ``--additional-python-modules``, with the
  model's recorded framework pin added: :mod:`steps.frameworks`); a scoring module that does not
  import is one error, never a silently missing requirement. The zip holds every ``steps`` module
  and the DSL's pure model (``pipelines/graph.py``), so the scoring function may live in the
  pipeline module itself; what else that module imports at the top must exist on Glue (pandas,
  NumPy, pyarrow and scikit-learn do; anything else goes in ``glue_python_modules``).
* **local profile**: the Arrow engine (:mod:`steps.batch_local`, parallel workers, one per CPU,
  memory bounded by the batch size; ``worker_type``/``number_of_workers`` apply to Glue only). ``glue_engine = "spark"`` (``HEADRACE_GLUE_ENGINE=spark``) runs the generated Glue script
  itself on local Spark (the ``[spark]`` extra and Java 17) through :func:`run_script_locally`.
  Both run under the Python that has the model's recorded framework version (:func:`model_python`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from steps.batch_local import ScoreResult, score_parquet
from steps.context import StepContext
from steps.contract import ArtifactRef
from steps.errors import ConfigError, HandoffFailed, NotFoundError, StepFailed, UserError
from steps.frameworks import Framework, read_model_framework
from steps.glue_script import ROWS_FILE
from steps.handoff import Phase, phase_of, poll, terminate_as_interrupt
from steps.procs import owned_popen_options
from steps.settings import Settings

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
#: Besides every module of ``steps`` (light at import: standard library only), the pipeline DSL's
#: pure model is shipped too, so a scoring function living in a pipeline module imports on Glue.
SHIPPED_DSL = ("pipelines/__init__.py", "pipelines/graph.py")
ENGINES = ("arrow", "spark")
#: The attempt's record of the Glue run it started, under its output prefix.
RUN_RECORD = "glue-run.json"

ScoreFunction = Callable[[Any, Any], Any]


def batch_infer(
    ctx: StepContext,
    score: ScoreFunction | str,
    model: Any,
    data: Any,
    worker_type: str = "G.1X",
    number_of_workers: int = 2,
    batch_size: int = 65536,
    output_schema: dict[str, str] | None = None,
) -> ArtifactRef:
    """Score every row of ``data`` with ``score(batch, model)``; returns the output Parquet dataset.

    ``model`` and ``data`` are upstream outputs (or references, or local paths). ``output_schema``
    (``{"column": "double"}``) is checked on every batch; without it the schema the function returns
    for the input's first rows is the contract. See the module docstring for the two sides.
    """
    where = f"pipeline {ctx.pipeline}, task {ctx.task}"
    if not callable(score) and not isinstance(score, str):
        raise UserError(f"{where}: score must be a function or 'module:function', got {type(score).__name__}")
    model_ref, data_ref = _as_ref(model, "model", where), _as_ref(data, "data", where)
    if ctx.is_local:
        return _run_local(ctx, score, model_ref, data_ref, batch_size, output_schema)
    return _run_glue(ctx, score, model_ref, data_ref, worker_type, number_of_workers, batch_size, output_schema)


batch_infer.__headrace_target__ = "glue"  # type: ignore[attr-defined]


def _as_ref(value: Any, name: str, where: str) -> ArtifactRef:
    if isinstance(value, ArtifactRef):
        return value
    ref = getattr(value, "ref", None)
    if isinstance(ref, ArtifactRef):
        return ref
    if isinstance(value, str | Path):
        text = str(value)
        if "://" not in text:
            path = Path(text).resolve()
            if not path.exists():
                raise NotFoundError(f"{where}: {name} {text}: not found; give an upstream output or an existing path")
            text = path.as_uri()
        return ArtifactRef(text, 0)
    raise UserError(f"{where}: {name} must be an upstream output, an artifact reference or a path")


# ----------------------------------------------------------------------------- local side


def engine(settings: Settings) -> str:
    """The local engine, setting ``glue_engine`` (``HEADRACE_GLUE_ENGINE``): ``arrow`` or ``spark``."""
    chosen = settings.glue_engine.strip().lower() or "arrow"
    if chosen not in ENGINES:
        raise ConfigError(
            f"glue_engine: {chosen!r} is not an engine; use arrow or spark (HEADRACE_GLUE_ENGINE or headrace.toml)"
        )
    return chosen


def _run_local(
    ctx: StepContext,
    score: ScoreFunction | str,
    model: ArtifactRef,
    data: ArtifactRef,
    batch_size: int,
    output_schema: dict[str, str] | None,
) -> ArtifactRef:
    from steps.artifacts import LocalStore

    model_path = ctx.artifact(model).local_path()
    data_path = ctx.artifact(data).local_path()
    key = ctx.output_key("scores")
    store = ctx.store
    local_store = isinstance(store, LocalStore)
    target = store.path / key if isinstance(store, LocalStore) else Path(tempfile.mkdtemp(prefix="headrace-")) / "out"
    target.parent.mkdir(parents=True, exist_ok=True)
    chosen = engine(ctx.settings)
    python = model_python(model_path, f"pipeline {ctx.pipeline}, task {ctx.task}")
    if chosen == "spark":
        result = run_script_locally(
            data_path, target, score, model_path, batch_size=batch_size, output_schema=output_schema, python=python
        )
    elif python != sys.executable:
        result = score_in(python, data_path, target, score, model_path, batch_size, output_schema)
    else:
        result = score_parquet(
            data_path,
            target,
            score,
            model_path,
            batch_size=batch_size,
            output_schema=output_schema,
            pool=ctx.settings.batch_pool or None,
            progress=ctx.progress,
        )
    ctx.record(batch_engine=chosen, batch_rows=result.rows, batch_size=batch_size)
    ctx.log.info("scored %d rows into %s (%s engine)", result.rows, target, chosen)
    if local_store:
        return ArtifactRef(target.as_uri(), result.bytes, result.rows, "parquet")
    stored = store.put_file(target, key, rows=result.rows, format="parquet")
    shutil.rmtree(target.parent, ignore_errors=True)
    return ArtifactRef(stored.uri, result.bytes, result.rows, "parquet")


def model_python(model_path: Path, where: str) -> str:
    """The interpreter that has the model's recorded framework version (this one when it does, or
    when nothing was recorded); see :mod:`steps.frameworks`."""
    from steps import frameworks

    framework = frameworks.read_local_framework(model_path)
    return frameworks.python_for(framework, where=where) if framework else sys.executable


def score_in(
    python: str,
    source: Path,
    output: Path,
    score: ScoreFunction | str,
    model_path: Path,
    batch_size: int,
    output_schema: Mapping[str, str] | None,
) -> ScoreResult:
    """The Arrow engine run by another interpreter (the model's framework environment)."""
    spec, shipped = score_reference(score)
    program = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from steps.batch_local import score_parquet\n"
        "a = json.loads(sys.argv[1])\n"
        "r = score_parquet(Path(a['source']), Path(a['output']), a['score'], a['model'], batch_size=a['batch_size'],"
        " output_schema=a['schema'], pool='thread')\n"
        "print(json.dumps({'rows': r.rows, 'bytes': r.bytes}))\n"
    )
    arguments = {
        "source": str(source),
        "output": str(output),
        "score": spec if shipped is None or not shipped.is_file() else f"{shipped}:{spec.partition(':')[2]}",
        "model": str(model_path),
        "batch_size": batch_size,
        "schema": dict(output_schema) if output_schema else None,
    }
    env = {**os.environ, "PYTHONPATH": _python_path(shipped)}
    completed = subprocess.run(
        [python, "-c", program, json.dumps(arguments)], env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        tail = _error_lines(completed.stderr + completed.stdout)
        raise HandoffFailed(f"scoring under {python} failed (exit {completed.returncode}): {tail}", reason=tail)
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    return ScoreResult(output, int(answer["rows"]), int(answer["bytes"]))


def score_reference(score: ScoreFunction | str) -> tuple[str, Path | None]:
    """How a job script finds ``score``: (``module:function``, the file or package to ship).

    A function in a module that stands on its own (no relative imports, no import of its own
    package) is shipped as that one file, a top-level module named by its stem: importing it on
    Glue then never runs its package's ``__init__`` (which may read files or import what Glue
    lacks). Otherwise the whole top-level package is shipped. A function defined in a script run
    as ``__main__`` is named by the script's stem.
    """
    if isinstance(score, str):
        module_name, _, qualname = score.partition(":")
        if module_name.endswith(".py"):
            return f"{Path(module_name).stem}:{qualname}", Path(module_name).resolve()
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        file = Path(spec.origin).resolve() if spec and spec.origin and spec.has_location else None
    else:
        module_name = getattr(score, "__module__", "") or ""
        qualname = getattr(score, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname or not module_name:
            raise UserError(
                f"score {qualname or score!r}: must be a module-level function, so Glue workers can import it"
            )
        try:
            file = Path(inspect.getfile(score)).resolve()
        except (TypeError, OSError):
            file = None
        if module_name == "__main__":
            if file is None:
                raise UserError("score: a function typed into an interactive session can not be shipped; use a file")
            return f"{file.stem}:{qualname}", file
    top = module_name.split(".")[0]
    if "." not in module_name or file is None:
        return f"{module_name}:{qualname}", file
    if file.name != "__init__.py" and _stands_alone(file, top):
        return f"{file.stem}:{qualname}", file
    package = file
    while package.parent.joinpath("__init__.py").is_file() and package.parent.name != top:
        package = package.parent
    return f"{module_name}:{qualname}", package.parent if package.parent.name == top else file


def _stands_alone(file: Path, package: str) -> bool:
    """True when a module neither imports relatively nor imports its own package."""
    import re

    text = file.read_text(encoding="utf-8", errors="replace")
    relative = re.search(r"^\s*from\s+\.", text, re.MULTILINE)
    own = re.search(rf"^\s*(?:from|import)\s+{re.escape(package)}(?:[.\s]|$)", text, re.MULTILINE)
    return relative is None and own is None


def _python_path(shipped: Path | None) -> str:
    roots = [str(Path(__file__).resolve().parent.parent)]
    if shipped is not None:
        roots.insert(0, str(shipped.parent))
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([*roots, existing] if existing else roots)


def run_script_locally(
    source: Path,
    output: Path,
    score: ScoreFunction | str,
    model_path: Path,
    *,
    batch_size: int = 65536,
    output_schema: Mapping[str, str] | None = None,
    master: str = "local[2]",
    conf: Mapping[str, str] | None = None,
    timeout: float | None = None,
    python: str | None = None,
) -> ScoreResult:
    """Run the generated Glue job script itself on local Spark, in a subprocess.

    ``python`` (default: this interpreter) runs the driver and the Python workers: the model's
    framework environment, with this interpreter's pyspark linked in (:func:`steps.frameworks.spark_path`).

    The same program Glue runs, with ``--spark-master`` added; output lands under a ``.partial-``
    name and is renamed only on success. Spark's log goes to this process's stderr; on failure the
    last lines (the Python error from the scoring function included) are in the raised error.
    """
    spec, shipped = score_reference(score)
    settings = {
        "spark.sql.shuffle.partitions": "2",
        "spark.ui.enabled": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        **dict(conf or {}),
    }
    staging = output.parent / f".partial-{output.name}-{uuid.uuid4().hex[:8]}"
    interpreter = python or sys.executable
    command = [
        interpreter,
        str(Path(__file__).with_name("glue_script.py")),
        "--input",
        str(source),
        "--output",
        str(staging),
        "--model",
        str(model_path),
        "--score",
        spec,
        "--batch-size",
        str(batch_size),
        "--spark-master",
        master,
        *[arg for key, value in settings.items() for arg in ("--spark-conf", f"{key}={value}")],
    ]
    if output_schema:
        command += ["--output-schema", json.dumps(dict(output_schema))]
    python_path = _python_path(shipped)
    if interpreter != sys.executable:
        from steps.frameworks import spark_path

        python_path = os.pathsep.join([python_path, spark_path(interpreter)])
    env = {**os.environ, "PYTHONPATH": python_path, "PYSPARK_PYTHON": interpreter, "PYSPARK_DRIVER_PYTHON": interpreter}
    # Its own session, dying with the task: a timeout kills Spark's JVM and workers with the driver.
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **owned_popen_options()
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            shutil.rmtree(staging, ignore_errors=True)
            raise StepFailed(f"local Spark run exceeded {timeout} s") from error
    completed = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
    if completed.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = _error_lines(completed.stderr + completed.stdout)
        raise HandoffFailed(
            f"local Spark run of the Glue script failed (exit {completed.returncode}): {tail}", reason=tail
        )
    rows = int((staging / ROWS_FILE).read_text())
    if output.exists():
        shutil.rmtree(output)
    os.replace(staging, output)
    size = sum(p.stat().st_size for p in output.iterdir() if p.suffix == ".parquet")
    return ScoreResult(output, rows, size)


def _error_lines(text: str) -> str:
    """The most telling line of a Spark/Python failure: our own error if present, else the tail."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "UserError:" in line or "NotFoundError:" in line:
            return line.split("Error: ", 1)[-1]
    return " | ".join(lines[-5:])


# ----------------------------------------------------------------------------- Glue side


def job_name(pipeline: str, task: str, definition: Mapping[str, Any]) -> str:
    """One Glue job per pipeline task and code version: ``headrace-<pipeline>-<task>-<hash>``.

    The hash covers the whole definition (script, code zip, modules, role, Glue version; not the
    worker type and count, which travel with each run), so a definition is created once and never
    updated: two runs of different code at the same time run different jobs, each its own script.
    """
    canonical = {k: v for k, v in definition.items() if k not in ("WorkerType", "NumberOfWorkers")}
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:12]
    return f"headrace-{pipeline}-{task}"[:242] + f"-{digest}"


def _run_glue(
    ctx: StepContext,
    score: ScoreFunction | str,
    model: ArtifactRef,
    data: ArtifactRef,
    worker_type: str,
    number_of_workers: int,
    batch_size: int,
    output_schema: dict[str, str] | None,
) -> ArtifactRef:
    from steps.aws import client, provider_errors, translate

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
    from steps.aws import error_code, provider_errors

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
    here = Path(__file__).resolve().parent
    files = [(path, f"steps/{path.name}") for path in sorted(here.glob("*.py"))]
    files += [(here.parent / name, name) for name in SHIPPED_DSL if (here.parent / name).is_file()]
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
    from steps.glue_script import load_callable

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
    from steps.aws import error_code, provider_errors

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
    from steps.aws import provider_errors, translate

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
    from steps.aws import client, error_code, provider_errors, translate

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
