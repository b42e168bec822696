"""Scoring functions and a tiny model shared by the batch-scoring suites (not a test module).

They live in an importable module because worker processes and Spark's Python workers import the
scoring function and unpickle the model by name, exactly as they would a user's module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


class LinearModel:
    """A vectorized linear scorer; records each unpickling (one line per load, with the pid)."""

    def __init__(self, weights: list[float], load_log: str = "") -> None:
        self.weights = np.asarray(weights)
        self.load_log = load_log

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.load_log:
            with open(self.load_log, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features @ self.weights)


def score(batch: pd.DataFrame, model: LinearModel) -> pd.DataFrame:
    """The scoring contract: one batch in, one scored frame out."""
    features = batch[["a", "b"]].to_numpy()
    return pd.DataFrame({"id": batch["id"].to_numpy(), "score": model.predict(features)})


def score_without_id(batch: pd.DataFrame, model: LinearModel) -> pd.DataFrame:
    return pd.DataFrame({"score": model.predict(batch[["a", "b"]].to_numpy())})


def score_as_text(batch: pd.DataFrame, model: LinearModel) -> pd.DataFrame:
    scores = model.predict(batch[["a", "b"]].to_numpy())
    return pd.DataFrame({"id": batch["id"].to_numpy(), "score": [f"{value:.3f}" for value in scores]})


def score_failing_late(batch: pd.DataFrame, model: LinearModel) -> pd.DataFrame:
    """Right schema for the first rows, a missing column once ids pass 3000."""
    scored = score(batch, model)
    return scored.drop(columns=["score"]) if int(batch["id"].max()) >= 3000 else scored


def write_input(path: Path, rows: int, *, row_group_size: int) -> pd.DataFrame:
    """Deterministic input: ids and two features, in row groups of ``row_group_size``."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"id": np.arange(rows, dtype="int64"), "a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)
    return frame
