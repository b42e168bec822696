"""Batch scoring speed and memory: the local Arrow engine vs one in-memory call vs local Spark.

    .venv/bin/python benchmarks/batch_inference.py                 # 1M and 10M rows
    .venv/bin/python benchmarks/batch_inference.py --rows 1000000 --engines arrow-thread,in-memory

Synthetic rows (an id and 8 float features) are generated once as Parquet, in 1M-row chunks
with 128k-row row groups, so generating 10M rows never holds them all in memory. The model is a
vectorized scikit-learn pipeline (StandardScaler + LogisticRegression), scored through the same
``score(batch, model)`` function by every engine, end to end from the input Parquet to an output
Parquet:

* ``arrow-process`` / ``arrow-thread``: :func:`steps.backends.batch_local.score_parquet` with worker
  processes (the default) or threads;
* ``in-memory``: read the whole file into one DataFrame, call ``score`` once, write the result;
* ``spark``: the generated Glue script on local Spark (``local[2]``) via ``run_script_locally``.

Each engine runs in its own process; peak memory is the highest summed RSS of that process and
all its children (workers, the JVM), sampled every 50 ms. The model is loaded before the clock
starts; everything after (worker start-up included) is timed. Every engine but Spark runs
``--pairs`` rounds (each round starts with another engine, so load that comes and goes hits
all); "vs in-memory" is the median of the per-round ratios. Spark runs once, its time split
into the work itself (reading, scoring, writing, as the Glue script reports it) and the rest
(the interpreter, the JVM, the session, stopping). Targets (issue 4): the Arrow engine
reaches >= 80% of the in-memory rate at 1M rows, keeps memory bounded at 10M, and is >= 3x faster
than local Spark at 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FEATURES = [f"f{i}" for i in range(8)]
CHUNK = 1_000_000
ROW_GROUP = 131_072
ENGINES = ("arrow-process", "arrow-thread", "in-memory", "spark")


def score(batch: Any, model: Any) -> Any:
    """The user's scoring function: one vectorized predict over the batch."""
    import pandas as pd

    probability = model.predict_proba(batch[FEATURES].to_numpy())[:, 1]
    return pd.DataFrame({"id": batch["id"].to_numpy(), "score": probability})


# ----------------------------------------------------------------------------- data and model


def generate(path: Path, rows: int) -> None:
    """Write ``rows`` synthetic rows in chunks (memory stays at one chunk)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return
    partial = path.with_suffix(".partial")
    rng = np.random.default_rng(42)
    schema = pa.schema([("id", pa.int64()), *[(name, pa.float64()) for name in FEATURES]])
    with pq.ParquetWriter(partial, schema) as writer:
        for start in range(0, rows, CHUNK):
            count = min(CHUNK, rows - start)
            columns = [pa.array(np.arange(start, start + count, dtype="int64"))]
            columns += [pa.array(rng.normal(size=count)) for _ in FEATURES]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema), row_group_size=ROW_GROUP)
    partial.rename(path)


def train_model(folder: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from steps.backends.model_io import pack_dir

    archive = folder / "model.tar.gz"
    if archive.exists():
        return archive
    rng = np.random.default_rng(0)
    features = rng.normal(size=(100_000, len(FEATURES)))
    labels = (features @ rng.normal(size=len(FEATURES)) + rng.normal(size=100_000) > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    (folder / "model").mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model" / "model.joblib")
    return pack_dir(folder / "model", archive)


# ----------------------------------------------------------------------------- one engine, in a child


def run_engine(engine: str, source: Path, model: Path, output: Path) -> dict[str, Any]:
    """Score ``source`` with ``engine``; returns rows and seconds. Runs in the measured child."""
    import shutil

    import pyarrow.parquet as pq

    from steps.backends.model_io import load_model

    loaded = load_model(model)
    shutil.rmtree(output, ignore_errors=True)
    started = time.perf_counter()
    if engine in ("arrow-process", "arrow-thread"):
        from steps.backends.batch_local import score_parquet

        result = score_parquet(source, output, score, model, pool=engine.split("-")[1])
        rows = result.rows
    elif engine == "in-memory":
        import pyarrow as pa

        frame = pq.read_table(source).to_pandas()
        scored = score(frame, loaded)
        output.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), output / "part-00000.parquet")
        rows = len(scored)
    elif engine == "spark":
        from steps.backends.glue import run_script_locally

        result = run_script_locally(source, output, score, model, master="local[2]")
        seconds = time.perf_counter() - started
        return {"rows": result.rows, "seconds": seconds, "processing": result.processing_seconds}
    else:
        raise SystemExit(f"unknown engine {engine}; use one of {', '.join(ENGINES)}")
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _tree_rss(root: int) -> int:
    """Summed RSS in bytes of ``root`` and all its descendants.

    Walks ``/proc/<pid>/task/<tid>/children`` from the root, touching only the measured tree, so
    the sampler itself stays cheap (scanning all of /proc would steal CPU from the engines).
    """
    page = os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
                total += int(handle.read().split()[1]) * page
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as handle:
                    stack.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return total


def measure(engine: str, source: Path, model: Path, output: Path) -> dict[str, Any]:
    """Run one engine in a child process, sampling its process tree's memory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    command = [sys.executable, __file__, "--child", engine, str(source), str(model), str(output)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True) as child:
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], _tree_rss(child.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = child.communicate()
        done.set()
        sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{engine} failed (exit {child.returncode})")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_bytes"] = peak[0]
    return result


# ----------------------------------------------------------------------------- the table


def median_spread(values: list[float], fmt: str) -> str:
    middle = statistics.median(values)
    if len(values) == 1:
        return fmt.format(middle)
    return f"{fmt.format(middle)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--pairs", type=int, default=5, help="rounds of every engine but Spark (which runs once)")
    parser.add_argument("--spark-max-rows", type=int, default=1_000_000, help="skip Spark above this size")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "headrace-bench"))
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results: dict[tuple[int, str], list[dict[str, Any]]] = {}
    loads = [os.getloadavg()[0]]
    model = train_model(workdir)
    for rows in args.rows:
        source = workdir / f"input-{rows}.parquet"
        generate(source, rows)
        for round_ in range(args.pairs):
            paired = [e for e in engines if e != "spark"]
            shift = round_ % len(paired) if paired else 0
            for engine in paired[shift:] + paired[:shift]:  # each round starts with another engine
                console.log(f"{engine} on {rows:,} rows, round {round_ + 1}")
                result = measure(engine, source, model, workdir / f"out-{engine}-{rows}")
                results.setdefault((rows, engine), []).append(result)
                loads.append(os.getloadavg()[0])
        if "spark" in engines and rows <= args.spark_max_rows:
            console.log(f"spark on {rows:,} rows")
            results[(rows, "spark")] = [measure("spark", source, model, workdir / f"out-spark-{rows}")]
            loads.append(os.getloadavg()[0])

    table = Table(
        title=f"Batch scoring ({os.cpu_count()} CPUs, load average {min(loads):.1f}-{max(loads):.1f}), "
        f"StandardScaler + LogisticRegression, 8 features; median (min-max) of {args.pairs} rounds"
    )
    for column in ("rows", "engine", "seconds", "rows/s", "vs in-memory (paired)", "peak memory"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    for (rows, engine), runs in results.items():
        baseline = results.get((rows, "in-memory"))
        ratio = "-"
        if baseline and engine != "spark":
            ratios = [
                (run["rows"] / run["seconds"]) / (base["rows"] / base["seconds"])
                for run, base in zip(runs, baseline, strict=True)
            ]
            ratio = median_spread([100 * r for r in ratios], "{:.0f}%")
        seconds = median_spread([run["seconds"] for run in runs], "{:.2f}")
        if engine == "spark" and runs[0].get("processing") is not None:
            work = runs[0]["processing"]
            seconds += f" = {runs[0]['seconds'] - work:.1f} start-up + {work:.1f} work"
        table.add_row(
            f"{rows:,}",
            engine,
            seconds,
            f"{statistics.median(run['rows'] / run['seconds'] for run in runs):,.0f}",
            ratio,
            f"{max(run['peak_bytes'] for run in runs) / 2**20:,.0f} MiB",
        )
    console.print(table)
    for engine in ("arrow-thread", "arrow-process"):
        small, spark = results.get((1_000_000, engine)), results.get((1_000_000, "spark"))
        if small and spark:
            arrow = statistics.median(run["seconds"] for run in small)
            console.print(f"{engine} vs local Spark at 1M rows: {spark[0]['seconds'] / arrow:.1f}x faster")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        engine, source, model, output = sys.argv[2:6]
        print(json.dumps(run_engine(engine, Path(source), Path(model), Path(output))), flush=True)
    else:
        main()
