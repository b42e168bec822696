"""SageMaker training entry script: learn a recipe's likely outcome (cook, save, skip).

It follows SageMaker's script-mode contract and nothing else, so the same file runs in the
scikit-learn training container and in headrace's local subprocess:

- training data: every ``*.parquet`` / ``*.csv`` file under ``SM_CHANNEL_TRAIN``;
- hyperparameters: ``--name value`` arguments (what SageMaker passes), or ``SM_HPS`` (JSON);
- the model goes to ``SM_MODEL_DIR`` (``model.joblib`` + ``metadata.json``), which SageMaker packs
  into ``model.tar.gz``; evaluation numbers go to ``SM_OUTPUT_DATA_DIR/metrics.json``;
- metrics are printed as ``name=value`` lines for SageMaker's metric definitions.

It imports neither headrace nor the example package: only pandas, numpy, scikit-learn and joblib,
which the container ships.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

DEFAULT_FEATURES = "cook_minutes,ingredients,rating,photo_score,views_7d,saves_7d"


def parse_args(argv: list[str]) -> argparse.Namespace:
    hps = json.loads(os.environ.get("SM_HPS", "{}") or "{}")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", default=str(hps.get("features", DEFAULT_FEATURES)))
    parser.add_argument("--label", default=str(hps.get("label", "outcome")))
    parser.add_argument("--max-iter", "--max_iter", dest="max_iter", type=int, default=int(hps.get("max_iter", 30)))
    parser.add_argument(
        "--learning-rate",
        "--learning_rate",
        dest="learning_rate",
        type=float,
        default=float(hps.get("learning_rate", 0.1)),
    )
    parser.add_argument("--holdout", type=float, default=float(hps.get("holdout", 0.2)))
    parser.add_argument("--seed", type=int, default=int(hps.get("seed", 7)))
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument("--output-data-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    args, _unknown = parser.parse_known_args(argv)
    return args


def read_channel(path: Path) -> pd.DataFrame:
    """Every Parquet or CSV file under the channel folder, in a stable order."""
    if path.is_file():
        files = [path]
    else:
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".parquet", ".csv"))
    if not files:
        raise SystemExit(f"no .parquet or .csv files under the training channel {path}")
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True)


def train(frame: pd.DataFrame, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """Fit the classifier on all but a holdout slice; return it and its evaluation."""
    features = [name.strip() for name in args.features.split(",") if name.strip()]
    missing = [name for name in [*features, args.label] if name not in frame.columns]
    if missing:
        raise SystemExit(f"training data lacks column(s) {', '.join(missing)}; columns are {', '.join(frame.columns)}")
    x = frame[features]
    y = frame[args.label].astype(str).to_numpy()
    stratify = y if len(np.unique(y)) > 1 and len(y) >= 10 else None
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=args.holdout, random_state=args.seed, stratify=stratify
    )
    # The column selection is part of the model: a scorer passes whole item rows, by name.
    model = Pipeline(
        [
            ("features", ColumnTransformer([("selected", "passthrough", features)], remainder="drop")),
            (
                "classifier",
                HistGradientBoostingClassifier(
                    max_iter=args.max_iter,
                    learning_rate=args.learning_rate,
                    early_stopping=False,
                    random_state=args.seed,
                ),
            ),
        ]
    )
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        "train_rows": len(y_train),
        "holdout_rows": len(y_test),
    }
    return model, {"features": features, "label": args.label, "classes": [str(c) for c in model.classes_], **metrics}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    frame = read_channel(Path(args.train))
    model, metadata = train(frame, args)
    model_dir = Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    metadata["train_seconds"] = round(time.perf_counter() - started, 3)
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
    output_dir = Path(args.output_data_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))
    for name in ("accuracy", "f1_macro"):
        print(f"validation:{name}={metadata[name]:.4f}", flush=True)
    print(f"trained on {metadata['train_rows']} rows; classes {', '.join(metadata['classes'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
