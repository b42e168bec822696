"""Deterministic sample data for the recipe stream: the warehouse a recipe service would have.

Two tables, the same ones the pipeline's SQL reads in BigQuery:

- ``recipes.events``: one row per recipe shown to a user, with the recipe's features at that
  moment and what the user then did (``outcome``: ``cook``, ``save`` or ``skip``). The pipeline
  trains on yesterday's events.
- ``recipes.items``: today's catalogue snapshot, one row per recipe with the same features and no
  label. The pipeline predicts each item's outcome.

Why deterministic and drifting: every value depends only on ``(day, rows, seed)``, so a test can
recompute what a run should have seen, and the class mix moves from day to day (an even
33/33/33 on one day, 80/15/5 on another, see :mod:`examples.drift`), which is what makes the
control room size the per-class tasks differently from one run to the next.

Large sizes (10M rows for benchmarks) are written in chunks of :data:`CHUNK_ROWS` rows, so memory
stays flat; the rows do not depend on the chunk size.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from examples.drift import class_mix, daily_rows

#: The outcome classes, in the order every table, model and report uses.
CLASSES: tuple[str, ...] = ("cook", "save", "skip")
#: Items in the catalogue by default: small enough for a laptop run in seconds.
DEFAULT_ROWS = 10_000
DEFAULT_SEED = 7
#: Rows generated and written at a time; bounds memory for 10M-row benchmark tables.
CHUNK_ROWS = 500_000
DATASET = "recipes"
CUISINES = ("italian", "japanese", "mexican", "indian", "french", "thai", "american", "korean")

#: Per-class feature distributions (mean, standard deviation): separated enough that a small
#: classifier recovers the class of nearly every item, noisy enough that it has to learn it.
PROFILES: dict[str, dict[str, tuple[float, float]]] = {
    "cook": {
        "cook_minutes": (22, 6),
        "ingredients": (7, 2),
        "rating": (4.6, 0.2),
        "photo_score": (0.80, 0.08),
        "views_7d": (900, 200),
        "saves_7d": (40, 10),
    },
    "save": {
        "cook_minutes": (80, 18),
        "ingredients": (14, 3),
        "rating": (4.3, 0.25),
        "photo_score": (0.85, 0.07),
        "views_7d": (500, 120),
        "saves_7d": (130, 25),
    },
    "skip": {
        "cook_minutes": (45, 12),
        "ingredients": (9, 3),
        "rating": (3.2, 0.35),
        "photo_score": (0.40, 0.12),
        "views_7d": (150, 50),
        "saves_7d": (5, 3),
    },
}
FEATURES: tuple[str, ...] = ("cook_minutes", "ingredients", "rating", "photo_score", "views_7d", "saves_7d")
_INTEGER_FEATURES = frozenset({"cook_minutes", "ingredients", "views_7d", "saves_7d"})
_TABLE_SALT = {"items": 1, "events": 2}


def class_counts(day: dt.date, rows: int, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """Exact rows per class for ``rows`` rows on ``day``: the drifting mix, rounded so the counts
    add up to ``rows`` (largest remainder)."""
    mix = _mix(day, seed)
    raw = [share * rows for share in mix]
    counts = [int(value) for value in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (raw[i] - counts[i], -i), reverse=True)
    for index in by_remainder[: rows - sum(counts)]:
        counts[index] += 1
    return dict(zip(CLASSES, counts, strict=True))


def item_rows(day: dt.date, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> int:
    """Catalogue size on ``day``: the size knob itself (the catalogue does not churn daily)."""
    return rows


def event_rows(day: dt.date, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED) -> int:
    """Events on ``day``: traffic varies by day around the size knob."""
    return int(daily_rows(day, rows, seed))


def _mix(day: dt.date, seed: int) -> list[float]:
    mix = class_mix(day, seed, CLASSES)
    return [float(mix[name]) for name in CLASSES]


def _labels(table: str, day: dt.date, rows: int, seed: int) -> np.ndarray:
    """Class index of every row: exact counts per class, in a deterministic shuffled order."""
    counts = class_counts(day, rows, seed)
    labels = np.repeat(np.arange(len(CLASSES), dtype=np.int8), [counts[name] for name in CLASSES])
    rng = np.random.default_rng([seed, day.toordinal(), _TABLE_SALT[table], 0])
    rng.shuffle(labels)
    return labels


def _features(labels: np.ndarray, rng: np.random.Generator) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {}
    for feature in FEATURES:
        means = np.array([PROFILES[name][feature][0] for name in CLASSES])[labels]
        stds = np.array([PROFILES[name][feature][1] for name in CLASSES])[labels]
        values = rng.normal(means, stds)
        if feature in _INTEGER_FEATURES:
            columns[feature] = pa.array(np.maximum(np.rint(values), 1).astype(np.int32))
        elif feature == "rating":
            columns[feature] = pa.array(np.clip(values, 1.0, 5.0).astype(np.float32))
        else:
            columns[feature] = pa.array(np.clip(values, 0.0, 1.0).astype(np.float32))
    return columns


def _dates(day: dt.date, n: int) -> pa.Array:
    days_since_epoch = day.toordinal() - dt.date(1970, 1, 1).toordinal()
    return pa.array(np.full(n, days_since_epoch, dtype=np.int32), pa.date32())


def _cuisines(rng: np.random.Generator, n: int) -> pa.Array:
    indices = pa.array(rng.integers(0, len(CUISINES), n, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(indices, pa.array(CUISINES))


def _chunks(total: int, chunk_rows: int) -> Iterator[tuple[int, int, int]]:
    for index, start in enumerate(range(0, total, chunk_rows)):
        yield index, start, min(start + chunk_rows, total)


def _rng(table: str, day: dt.date, seed: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), _TABLE_SALT[table], chunk + 1])


def generate_items(
    day: dt.date, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.Table]:
    """Today's catalogue, chunk by chunk: ``snapshot_date, recipe_id, cuisine, <features>``."""
    total = item_rows(day, rows, seed)
    labels = _labels("items", day, total, seed)
    for chunk, start, stop in _chunks(total, CHUNK_ROWS):
        rng = _rng("items", day, seed, chunk)
        n = stop - start
        columns = {
            "snapshot_date": _dates(day, n),
            "recipe_id": pa.array(np.arange(start + 1, stop + 1, dtype=np.int64)),
            "cuisine": _cuisines(rng, n),
            **_features(labels[start:stop], rng),
        }
        yield from _rechunk(pa.table(columns), chunk_rows)


def generate_events(
    day: dt.date, rows: int = DEFAULT_ROWS, seed: int = DEFAULT_SEED, chunk_rows: int = CHUNK_ROWS
) -> Iterator[pa.Table]:
    """One day of events, chunk by chunk: ``event_date, event_id, user_id, recipe_id, cuisine,
    <features>, outcome``."""
    total = event_rows(day, rows, seed)
    labels = _labels("events", day, total, seed)
    outcome_names = pa.array(CLASSES)
    catalogue = max(item_rows(day, rows, seed), 1)
    for chunk, start, stop in _chunks(total, CHUNK_ROWS):
        rng = _rng("events", day, seed, chunk)
        n = stop - start
        columns = {
            "event_date": _dates(day, n),
            "event_id": pa.array(np.arange(start + 1, stop + 1, dtype=np.int64) + day.toordinal() * 10**10),
            "user_id": pa.array(rng.integers(1, max(total // 4, 2), n, dtype=np.int64)),
            "recipe_id": pa.array(rng.integers(1, catalogue + 1, n, dtype=np.int64)),
            "cuisine": _cuisines(rng, n),
            **_features(labels[start:stop], rng),
            "outcome": pa.DictionaryArray.from_arrays(pa.array(labels[start:stop].astype(np.int32)), outcome_names),
        }
        yield from _rechunk(pa.table(columns), chunk_rows)


def _rechunk(table: pa.Table, chunk_rows: int) -> Iterator[pa.Table]:
    for offset in range(0, max(table.num_rows, 1), chunk_rows):
        yield table.slice(offset, chunk_rows)


@dataclass(frozen=True)
class WrittenTable:
    """One table partition the generator wrote: where, how many rows, rows per class."""

    name: str
    path: Path
    rows: int
    classes: dict[str, int]


def partition_path(root: Path, table: str, day: dt.date) -> Path:
    """Where one day of ``recipes.<table>`` lives under the local tables folder."""
    return root / DATASET / table / f"{day.isoformat()}.parquet"


def _write(path: Path, chunks: Iterator[pa.Table]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.partial-{os.getpid()}")
    rows = 0
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in chunks:
            if writer is None:
                writer = pq.ParquetWriter(staging, chunk.schema, compression="zstd")
            writer.write_table(chunk)
            rows += chunk.num_rows
    finally:
        if writer is not None:
            writer.close()
    staging.replace(path)
    return rows


def write_day(
    root: Path | str,
    run_date: dt.date,
    rows: int = DEFAULT_ROWS,
    seed: int = DEFAULT_SEED,
    *,
    overwrite: bool = False,
) -> list[WrittenTable]:
    """Write what a run for ``run_date`` reads: yesterday's events and today's items.

    A partition already on disk is kept (the generator is deterministic, so it holds the same
    rows) unless ``overwrite``; a run over many days builds up the warehouse day by day.
    """
    base = Path(root)
    yesterday = run_date - dt.timedelta(days=1)
    plans = (
        ("events", yesterday, generate_events(yesterday, rows, seed), event_rows(yesterday, rows, seed)),
        ("items", run_date, generate_items(run_date, rows, seed), item_rows(run_date, rows, seed)),
    )
    written: list[WrittenTable] = []
    for table, day, chunks, total in plans:
        path = partition_path(base, table, day)
        if overwrite or not path.exists():
            _write(path, chunks)
        written.append(WrittenTable(f"{DATASET}.{table}", path, total, class_counts(day, total, seed)))
    return written
