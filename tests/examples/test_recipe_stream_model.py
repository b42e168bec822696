"""The training entry script under SageMaker's container contract, and the Glue scoring function."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from examples.recipe_stream import data, scoring

DAY = dt.date(2026, 11, 22)
SCRIPT = Path(data.__file__).parent / "model" / "train.py"


def _train(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the entry script as SageMaker does: channel, model and output folders in SM_* variables."""
    written = data.write_day(tmp_path / "tables", DAY, rows=3_000)
    channel = tmp_path / "input" / "data" / "train"
    channel.mkdir(parents=True)
    (channel / "part-0.parquet").write_bytes(written[0].path.read_bytes())
    environment = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(channel),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    result = _train(folder, env={"SM_HPS": json.dumps({"max_iter": 20, "holdout": 0.25})})
    assert result.returncode == 0, result.stderr
    (folder / "stdout.txt").write_text(result.stdout)
    return folder


def test_training_script_writes_model_and_metadata_to_sm_model_dir(trained: Path) -> None:
    metadata = json.loads((trained / "model" / "metadata.json").read_text())
    assert (trained / "model" / "model.joblib").is_file()
    assert metadata["classes"] == list(data.CLASSES)
    assert metadata["features"] == list(data.FEATURES)
    assert metadata["accuracy"] > 0.95
    assert json.loads((trained / "output" / "metrics.json").read_text())["accuracy"] == metadata["accuracy"]


def test_training_script_prints_metrics_for_sagemaker_metric_definitions(trained: Path) -> None:
    lines = [line for line in (trained / "stdout.txt").read_text().splitlines() if line.startswith("validation:")]
    assert [line.split("=")[0] for line in lines] == ["validation:accuracy", "validation:f1_macro"]
    assert float(lines[0].split("=")[1]) > 0.95


def test_training_script_reads_hyperparameters_from_sm_hps(trained: Path) -> None:
    metadata = json.loads((trained / "model" / "metadata.json").read_text())
    assert metadata["holdout_rows"] == pytest.approx((metadata["train_rows"] + metadata["holdout_rows"]) / 4, abs=1)
    assert joblib.load(trained / "model" / "model.joblib")[-1].max_iter == 20


def test_command_line_hyperparameters_win_over_sm_hps(tmp_path: Path) -> None:
    result = _train(tmp_path, "--max_iter", "3", env={"SM_HPS": json.dumps({"max_iter": 50})})
    assert result.returncode == 0, result.stderr
    assert joblib.load(tmp_path / "model" / "model.joblib")[-1].max_iter == 3


def test_training_script_names_the_missing_column(tmp_path: Path) -> None:
    result = _train(tmp_path, "--label", "not_a_column")
    assert result.returncode != 0
    assert "not_a_column" in result.stderr


def test_scoring_predicts_every_item_s_class_from_whole_rows(trained: Path) -> None:
    model = joblib.load(trained / "model" / "model.joblib")
    items = pd.concat([t.to_pandas() for t in data.generate_items(DAY, 2_000)], ignore_index=True)
    scored = scoring.score(items, model)
    assert list(scored.columns) == list(scoring.OUTPUT_COLUMNS)
    assert scored["recipe_id"].tolist() == items["recipe_id"].tolist()
    counts = scored["predicted_class"].value_counts().to_dict()
    expected = data.class_counts(DAY, 2_000)
    for outcome in data.CLASSES:
        assert abs(counts.get(outcome, 0) - expected[outcome]) <= 20, (counts, expected)
    assert scored["confidence"].between(1 / 3, 1.0).all()


def test_scoring_accepts_a_model_folder(trained: Path) -> None:
    items = next(iter(data.generate_items(DAY, 50))).to_pandas()
    from_folder = scoring.score(items, trained / "model")
    from_object = scoring.score(items, joblib.load(trained / "model" / "model.joblib"))
    pd.testing.assert_frame_equal(from_folder, from_object)


def test_scoring_an_empty_batch_keeps_the_output_columns(trained: Path) -> None:
    items = next(iter(data.generate_items(DAY, 10))).to_pandas().iloc[:0]
    scored = scoring.score(items, trained / "model")
    assert scored.empty
    assert list(scored.columns) == list(scoring.OUTPUT_COLUMNS)
