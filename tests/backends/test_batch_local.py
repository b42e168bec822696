"""The local Arrow scoring engine on real Parquet files and real worker processes."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
import pyarrow.parquet as pq
import pytest

from steps.backends.batch_local import score_parquet
from steps.backends.model_io import clear_cache, pack_dir
from steps.core.errors import NotFoundError, UserError
from tests.backends.scoring_examples import (
    LinearModel,
    score,
    score_as_text,
    score_failing_late,
    score_without_id,
    write_input,
)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(LinearModel([2.0, -1.0], load_log=str(tmp_path / "loads.txt")), folder / "model.joblib")
    clear_cache()
    return pack_dir(folder, tmp_path / "model.tar.gz")


def expected_scores(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"id": frame["id"], "score": frame["a"] * 2.0 - frame["b"]})


@pytest.mark.parametrize("pool", ["process", "thread"])
def test_scores_every_row_in_input_order_with_parallel_workers(tmp_path: Path, model_file: Path, pool: str) -> None:
    frame = write_input(tmp_path / "in.parquet", 10_000, row_group_size=2_000)
    output = tmp_path / "scores"

    result = score_parquet(tmp_path / "in.parquet", output, score, model_file, batch_size=700, workers=2, pool=pool)

    scored = pq.read_table(output).to_pandas()
    pd.testing.assert_frame_equal(scored, expected_scores(frame), check_exact=False)
    assert result.rows == 10_000
    assert (output / "_rows").read_text() == "10000"
    assert sorted(p.name for p in output.glob("*.parquet")) == [f"part-{i:05d}.parquet" for i in range(5)]
    assert result.bytes == sum(p.stat().st_size for p in output.glob("*.parquet"))


def test_each_worker_process_loads_the_model_once(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 12_000, row_group_size=1_000)

    score_parquet(
        tmp_path / "in.parquet", tmp_path / "scores", score, model_file, batch_size=250, workers=2, pool="process"
    )

    pids = (tmp_path / "loads.txt").read_text().split()
    # one load in the calling process (fail fast + schema), one per worker: 12 row groups, 48 batches
    assert len(pids) == len(set(pids)) <= 3


def test_scoring_function_named_as_module_and_function_string(tmp_path: Path, model_file: Path) -> None:
    frame = write_input(tmp_path / "in.parquet", 3_000, row_group_size=1_000)

    score_parquet(
        tmp_path / "in.parquet", tmp_path / "scores", "tests.backends.scoring_examples:score", model_file, workers=2
    )

    scored = pq.read_table(tmp_path / "scores").to_pandas()
    pd.testing.assert_frame_equal(scored, expected_scores(frame), check_exact=False)


def test_declared_output_schema_widens_ints_and_is_kept(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 1_000, row_group_size=1_000)

    score_parquet(
        tmp_path / "in.parquet",
        tmp_path / "scores",
        score,
        model_file,
        output_schema={"id": "double", "score": "float"},
    )

    schema = pq.read_schema(next((tmp_path / "scores").glob("*.parquet")))
    assert [str(t) for t in schema.types] == ["double", "float"]


def test_missing_column_against_declared_schema_names_it_and_leaves_no_output(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 2_000, row_group_size=1_000)

    with pytest.raises(UserError, match="column 'id' is missing"):
        score_parquet(
            tmp_path / "in.parquet",
            tmp_path / "scores",
            score_without_id,
            model_file,
            output_schema={"id": "int64", "score": "double"},
            workers=2,
        )

    assert not (tmp_path / "scores").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".partial")] == []


def test_batch_that_drifts_from_the_first_batch_schema_fails_in_the_worker_naming_the_column(
    tmp_path: Path, model_file: Path
) -> None:
    write_input(tmp_path / "in.parquet", 4_000, row_group_size=1_000)

    with pytest.raises(UserError, match=r"column 'score' is missing in row group 3 of in.parquet, batch 0"):
        score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score_failing_late, model_file, workers=2)

    assert not (tmp_path / "scores").exists()


def test_text_where_a_number_is_declared_names_the_column_and_both_types(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 500, row_group_size=500)

    with pytest.raises(UserError, match=r"column 'score' has type (large_)?string .*expected double"):
        score_parquet(
            tmp_path / "in.parquet",
            tmp_path / "scores",
            score_as_text,
            model_file,
            output_schema={"id": "int64", "score": "double"},
        )


def test_unexpected_extra_column_is_named(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 500, row_group_size=500)

    with pytest.raises(UserError, match="unexpected column 'id'"):
        score_parquet(
            tmp_path / "in.parquet", tmp_path / "scores", score, model_file, output_schema={"score": "double"}
        )


def test_missing_model_file_fails_before_any_work_with_the_path(tmp_path: Path) -> None:
    write_input(tmp_path / "in.parquet", 100, row_group_size=100)

    with pytest.raises(NotFoundError, match=r"model artifact .*nope.tar.gz: not found"):
        score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score, tmp_path / "nope.tar.gz")

    assert not (tmp_path / "scores").exists()


def test_model_archive_without_a_model_file_says_what_to_save(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no model here")
    archive = pack_dir(tmp_path / "empty", tmp_path / "model.tar.gz")
    write_input(tmp_path / "in.parquet", 100, row_group_size=100)

    with pytest.raises(NotFoundError, match=r"save the model as model.joblib in SM_MODEL_DIR"):
        score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score, archive)


def test_rerun_replaces_a_previous_complete_output(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 1_000, row_group_size=500)
    (tmp_path / "scores").mkdir()
    (tmp_path / "scores" / "part-00099.parquet").write_text("stale")

    score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score, model_file)

    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "_rows",
        "part-00000.parquet",
        "part-00001.parquet",
    ]


def test_unknown_pool_kind_is_named_with_the_choices(
    tmp_path: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_BATCH_POOL", "gpu")
    write_input(tmp_path / "in.parquet", 100, row_group_size=100)

    with pytest.raises(UserError, match="'gpu' is not a pool; use process or thread"):
        score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score, model_file)


def test_empty_input_with_a_declared_schema_gives_an_empty_complete_output(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 0, row_group_size=100)

    result = score_parquet(
        tmp_path / "in.parquet",
        tmp_path / "scores",
        score,
        model_file,
        output_schema={"id": "int64", "score": "double"},
    )

    assert result.rows == 0 and (tmp_path / "scores" / "_rows").read_text() == "0"
    assert pq.read_table(tmp_path / "scores").schema.names == ["id", "score"]


def test_empty_input_without_a_schema_asks_for_one(tmp_path: Path, model_file: Path) -> None:
    write_input(tmp_path / "in.parquet", 0, row_group_size=100)

    with pytest.raises(UserError, match="no rows, so the output schema can not be inferred; declare output_schema"):
        score_parquet(tmp_path / "in.parquet", tmp_path / "scores", score, model_file)
