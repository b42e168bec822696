"""The local batch-scoring engine: the user's ``score(batch, model)`` over Arrow record batches.

What Glue does with Spark executors, this does with parallel workers on one machine:

* The unit of work is one Parquet row group (files x row groups of the input). Each worker reads
  its row groups itself, in batches of ``batch_size`` rows, scores them and streams them into its
  own part file; no data crosses process boundaries, and memory is bounded by the batch size times
  the number of workers, never by the data size. An input made of a single row group runs in one
  process (nothing to split); writers that make big files use several row groups (pyarrow: 1Mi
  rows, Spark: 128 MiB).
* Output is a Parquet dataset folder: ``part-<unit>.parquet`` files named by input order, so
  reading the folder (sorted, as pyarrow does) gives rows in input order, plus ``_rows`` holding
  the row count, as the Glue job writes it.
* The model is loaded once per process (:func:`steps.backends.model_io.load_model` caches it).
* Output is written under a ``.partial-`` name and renamed only when every unit succeeded: a
  failed or killed run never leaves output that looks complete.
* Workers are threads by default (``pool="thread"``): Arrow's Parquet I/O, NumPy and the
  ``predict`` of vectorized scikit-learn models release the GIL, so threads score in parallel with
  no start-up cost, one shared copy of the model and half the memory of processes. Measured on
  ``benchmarks/batch_inference.py`` (1M/10M rows, 2 CPUs), threads were 2-3x faster than worker
  processes, which pay for importing the model's library once more (seconds for scikit-learn).
  A scoring function that holds the GIL (a Python loop per row) wants ``pool="process"``
  (``HEADRACE_BATCH_POOL=process``): worker processes from a ``forkserver`` started with pandas,
  pyarrow and the model's package preloaded, each loading the model once. Plain ``fork`` is not
  used: a child forked after the parent ran an OpenMP region (scikit-learn's histogram gradient
  boosting, for one) hangs forever in libgomp.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steps.backends.glue_code import ScoreFunction
from steps.backends.glue_script import ROWS_FILE, SAMPLE_ROWS, arrow_schema, conform, infer_schema, load_callable
from steps.backends.model_io import cpu_count, load_model
from steps.core.errors import NotFoundError, UserError

Progress = Callable[[float, float, str], None]


@dataclass(frozen=True)
class Unit:
    """One row group of one input file: the smallest piece a worker scores on its own."""

    index: int
    path: str
    row_group: int
    rows: int


@dataclass(frozen=True)
class ScoreResult:
    """What a local scoring run wrote: the output folder, its row count and size in bytes; for
    local Spark also the seconds of the work itself (reading, scoring, writing), without Spark's
    start-up."""

    path: Path
    rows: int
    bytes: int
    processing_seconds: float | None = None


def input_units(source: Path) -> list[Unit]:
    """Every row group of every Parquet file of ``source`` (a file or a folder), in order."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if not source.exists():
        raise NotFoundError(f"batch input {source}: not found; run the task that writes it first")
    dataset = ds.dataset(source, format="parquet")
    units: list[Unit] = []
    for path in sorted(dataset.files):
        metadata = pq.ParquetFile(path).metadata
        for group in range(metadata.num_row_groups):
            units.append(Unit(len(units), path, group, metadata.row_group(group).num_rows))
    return units


_score_cache: dict[str, ScoreFunction] = {}


def _resolve(score: ScoreFunction | str) -> ScoreFunction:
    if not isinstance(score, str):
        return score
    if score not in _score_cache:
        _score_cache[score] = load_callable(score)
    return _score_cache[score]


def score_unit(
    unit: Unit, score: ScoreFunction | str, model_path: str, schema: Any, batch_size: int, folder: str
) -> int:
    """Score one row group into ``folder/part-<index>.parquet``; returns rows written.

    Runs in a worker process (or in-process for a single unit).
    """
    import pyarrow.parquet as pq

    function = _resolve(score)
    model = load_model(model_path)
    rows = 0
    target = Path(folder) / f"part-{unit.index:05d}.parquet"
    with pq.ParquetWriter(target, schema) as writer:
        batches = pq.ParquetFile(unit.path).iter_batches(batch_size=batch_size, row_groups=[unit.row_group])
        for number, batch in enumerate(batches):
            where = f"row group {unit.row_group} of {Path(unit.path).name}, batch {number}"
            table = conform(function(batch.to_pandas(), model), schema, where)
            writer.write_table(table)
            rows += table.num_rows
    return rows


def output_schema_for(
    units: list[Unit], score: ScoreFunction | str, model_path: str, output_schema: dict[str, str] | None
) -> Any:
    """The declared schema, or the one the scoring function returns for the input's first rows."""
    if output_schema:
        return arrow_schema(output_schema)
    import pyarrow.parquet as pq

    first = next((unit for unit in units if unit.rows), None)
    if first is None:
        raise UserError("batch input has no rows, so the output schema can not be inferred; declare output_schema")
    batches = pq.ParquetFile(first.path).iter_batches(batch_size=SAMPLE_ROWS, row_groups=[first.row_group])
    sample = next(batches).to_pandas()
    return infer_schema(_resolve(score)(sample, load_model(model_path)))


POOLS = ("process", "thread")


def pool_kind(pool: str | None = None) -> str:
    """``thread`` (default) or ``process``; the ``batch_pool`` setting when not given (callers with
    settings pass ``settings.batch_pool``)."""
    if not pool:
        from steps.core.settings import load_settings

        pool = load_settings().batch_pool
    chosen = (pool or "thread").strip().lower()
    if chosen not in POOLS:
        raise UserError(f"HEADRACE_BATCH_POOL: {chosen!r} is not a pool; use process or thread")
    return chosen


def _context(model: Any) -> Any:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        top = type(model).__module__.split(".")[0]
        library = sorted(
            name
            for name in sys.modules
            if name.split(".")[0] == top and top not in ("builtins", "__main__") and ".tests" not in name
        )
        context.set_forkserver_preload(["pandas", "pyarrow", "pyarrow.parquet", "steps.backends.batch_local", *library])
    return context


def score_parquet(
    source: Path,
    output: Path,
    score: ScoreFunction | str,
    model_path: str | Path,
    *,
    batch_size: int = 65536,
    output_schema: dict[str, str] | None = None,
    workers: int | None = None,
    pool: str | None = None,
    progress: Progress | None = None,
) -> ScoreResult:
    """Score the Parquet at ``source`` into the dataset folder ``output``; see the module docstring."""
    if batch_size < 1:
        raise UserError(f"batch_size: {batch_size} must be at least 1")
    kind = pool_kind(pool)
    model = str(model_path)
    loaded = load_model(model)  # fail fast, before any process starts, on a missing or unreadable model
    units = input_units(source)
    schema = output_schema_for(units, score, model, output_schema)
    total = sum(unit.rows for unit in units)
    staging = output.parent / f".partial-{output.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        executor = _executor(kind, max(1, min(workers or cpu_count(), len(units))), loaded)
        rows = _run_units(units, score, model, schema, batch_size, staging, executor, total, progress)
        if not units:
            import pyarrow.parquet as pq

            pq.write_table(schema.empty_table(), staging / "part-00000.parquet")
        (staging / ROWS_FILE).write_text(str(rows))
        if output.exists():
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in output.iterdir() if p.suffix == ".parquet")
    return ScoreResult(output, rows, size)


def _executor(kind: str, count: int, model: Any) -> Executor | None:
    if count == 1:
        return None
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=count, thread_name_prefix="headrace-score")
    return ProcessPoolExecutor(max_workers=count, mp_context=_context(model))


def _run_units(
    units: list[Unit],
    score: ScoreFunction | str,
    model: str,
    schema: Any,
    batch_size: int,
    staging: Path,
    executor: Executor | None,
    total: int,
    progress: Progress | None,
) -> int:
    done = 0
    if executor is None:
        for unit in units:
            done += score_unit(unit, score, model, schema, batch_size, str(staging))
            if progress:
                progress(done, total, "rows scored")
        return done
    with executor as pool:
        pending: set[Future[int]] = {
            pool.submit(score_unit, unit, score, model, schema, batch_size, str(staging)) for unit in units
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in finished:
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    raise error
                done += future.result()
            if progress:
                progress(done, total, "rows scored")
    return done
