"""Batch inference: one scoring function, run by Glue (PySpark) in the cloud or locally.

The user writes ``score(batch: pandas.DataFrame, model) -> pandas.DataFrame``; :func:`batch_infer`
runs it over every row of a Parquet input and returns the scored Parquet dataset (a folder of part
files) with its size and row count.

* **aws profile**: the job script (:mod:`steps.backends.glue_script`, a plain ``SparkSession`` program) is
  uploaded under a content-addressed prefix with a zip of the user's module and the few headrace
  modules the script needs (``--extra-py-files``). The Glue job ``headrace-<pipeline>-<task>-<hash>``
  is created once per code version (:func:`steps.backends.glue_cloud.job_name`: never updated, so concurrent runs of
  different code never share a script), a run is started with the worker type and count from the
  control room when sized (or, on a retry of the same attempt, the earlier run is attached to:
  :func:`steps.backends.glue_cloud._existing_run`), polled with backoff and mapped through
  :data:`steps.backends.glue_cloud.GLUE_STATES`. Success is
  proven by the ``_rows`` file the script writes last; the bytes are the sum of the output
  objects. A scoring module may list pip requirements in a module attribute
  ``glue_python_modules = ["lightgbm==4.6.0"]`` (sent as ``--additional-python-modules``, with the
  model's recorded framework pin added: :mod:`steps.backends.frameworks`); a scoring module that does not
  import is one error, never a silently missing requirement. The zip holds every ``steps`` module
  and the DSL's pure model (``pipelines/graph.py``), so the scoring function may live in the
  pipeline module itself; what else that module imports at the top must exist on Glue (pandas,
  NumPy, pyarrow and scikit-learn do; anything else goes in ``glue_python_modules``).
* **local profile**: the Arrow engine (:mod:`steps.backends.batch_local`, parallel workers, one per CPU,
  memory bounded by the batch size; ``worker_type``/``number_of_workers`` apply to Glue only). ``glue_engine = "spark"`` (``HEADRACE_GLUE_ENGINE=spark``) runs the generated Glue script
  itself on local Spark (the ``[spark]`` extra and Java 17) through :func:`run_script_locally`.
  Both run under the Python that has the model's recorded framework version (:func:`model_python`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steps.backends.batch_local import ScoreResult, score_parquet
from steps.backends.glue_code import ScoreFunction, score_reference
from steps.backends.glue_script import ROWS_FILE
from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, HandoffFailed, NotFoundError, StepFailed, UserError
from steps.core.settings import Settings
from steps.runtime.context import StepContext
from steps.runtime.procs import owned_popen_options
from steps.runtime.warm import popen as warm_popen

ENGINES = ("arrow", "spark")


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
    from steps.backends.glue_cloud import run_glue

    return run_glue(ctx, score, model_ref, data_ref, worker_type, number_of_workers, batch_size, output_schema)


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
    from steps.storage.artifacts import LocalStore

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
    if result.processing_seconds is not None:
        ctx.log.info("local Spark: %.1f s of reading, scoring and writing", result.processing_seconds)
    if local_store:
        return ArtifactRef(target.as_uri(), result.bytes, result.rows, "parquet")
    stored = store.put_file(target, key, rows=result.rows, format="parquet")
    shutil.rmtree(target.parent, ignore_errors=True)
    return ArtifactRef(stored.uri, result.bytes, result.rows, "parquet")


def model_python(model_path: Path, where: str) -> str:
    """The interpreter that has the model's recorded framework version (this one when it does, or
    when nothing was recorded); see :mod:`steps.backends.frameworks`."""
    from steps.backends import frameworks

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
        "from steps.backends.batch_local import score_parquet\n"
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
    command = [python, "-c", program, json.dumps(arguments)]
    # A warm framework interpreter forks the scorer when the run keeps one (steps.runtime.warm).
    warm = warm_popen(command, cwd=os.getcwd(), env=env, merge_stderr=False)
    if warm is not None:
        with warm:
            stdout, stderr = warm.communicate()
        code = warm.returncode
    else:
        completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        stdout, stderr, code = completed.stdout, completed.stderr, completed.returncode
    if code != 0:
        tail = _error_lines(stderr + stdout)
        raise HandoffFailed(f"scoring under {python} failed (exit {code}): {tail}", reason=tail)
    answer = json.loads(stdout.strip().splitlines()[-1])
    return ScoreResult(output, int(answer["rows"]), int(answer["bytes"]))


def _python_path(shipped: Path | None) -> str:
    roots = [str(Path(__file__).resolve().parents[2])]  # the folder holding the steps package
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
    framework environment, with this interpreter's pyspark linked in (:func:`steps.backends.frameworks.spark_path`).

    The same program Glue runs, with ``--spark-master`` added; output lands under a ``.partial-``
    name and is renamed only on success. The script's output and Spark's log go to this process's
    stdout and stderr (the task's log); on failure the last lines (the Python error from the
    scoring function included) are in the raised error too.
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
        from steps.backends.frameworks import spark_path

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
    # Into the task's log (``headrace logs``), as a Glue job's output goes to its CloudWatch log
    # streams; written after the run since the tail also makes the error message on a failure.
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
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
    import re

    work = re.search(r"^headrace: scored \d+ rows into .* in ([0-9.]+) s$", stdout, re.MULTILINE)
    return ScoreResult(output, rows, size, float(work.group(1)) if work else None)


def _error_lines(text: str) -> str:
    """The most telling line of a Spark/Python failure: our own error if present, else the tail."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "UserError:" in line or "NotFoundError:" in line:
            return line.split("Error: ", 1)[-1]
    return " | ".join(lines[-5:])
