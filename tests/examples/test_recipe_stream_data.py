"""The sample-data generator: deterministic, drifting by day, sized by one knob, chunked when big."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from examples.recipe_stream import data

DAY = dt.date(2026, 11, 22)


def _concat(chunks: object) -> pa.Table:
    return pa.concat_tables(list(chunks))  # type: ignore[call-overload]


def test_same_day_rows_and_seed_give_identical_tables() -> None:
    first = _concat(data.generate_items(DAY, 2_000, seed=3))
    second = _concat(data.generate_items(DAY, 2_000, seed=3))
    assert first.equals(second)
    assert not first.equals(_concat(data.generate_items(DAY, 2_000, seed=4)))


def test_rows_do_not_depend_on_the_chunk_size() -> None:
    whole = _concat(data.generate_events(DAY, 3_000, chunk_rows=1_000_000))
    pieces = list(data.generate_events(DAY, 3_000, chunk_rows=700))
    assert [p.num_rows for p in pieces] == [700] * (len(whole) // 700) + (
        [len(whole) % 700] if len(whole) % 700 else []
    )
    assert pa.concat_tables(pieces).equals(whole)


def test_class_counts_are_exact_and_add_up_to_the_rows() -> None:
    for offset in range(14):
        day = DAY + dt.timedelta(days=offset)
        counts = data.class_counts(day, 10_001)
        assert sum(counts.values()) == 10_001
        assert set(counts) == set(data.CLASSES)


def test_class_mix_drifts_between_an_even_day_and_a_skewed_day() -> None:
    shares = []
    for offset in range(28):
        counts = data.class_counts(DAY + dt.timedelta(days=offset), 10_000)
        shares.append(max(counts.values()) / 10_000)
    assert min(shares) < 0.40, "some day should be close to an even 33/33/33 mix"
    assert max(shares) >= 0.75, "some day should be dominated by one class (80/15/5)"


def test_events_carry_the_day_s_outcome_mix_exactly() -> None:
    table = _concat(data.generate_events(DAY, 4_000))
    expected = data.class_counts(DAY, data.event_rows(DAY, 4_000))
    outcomes = table.column("outcome").to_pylist()
    assert {name: outcomes.count(name) for name in data.CLASSES} == expected
    assert set(table.column("event_date").to_pylist()) == {DAY}


def test_size_knob_sets_the_catalogue_size() -> None:
    assert _concat(data.generate_items(DAY, 123)).num_rows == 123
    assert _concat(data.generate_items(DAY, 10_000)).num_rows == 10_000
    assert data.DEFAULT_ROWS == 10_000


def test_write_day_writes_yesterdays_events_and_todays_items(tmp_path: Path) -> None:
    written = {t.name: t for t in data.write_day(tmp_path, DAY, rows=1_500)}
    events, items = written["recipes.events"], written["recipes.items"]
    assert events.path == tmp_path / "recipes" / "events" / "2026-11-21.parquet"
    assert items.path == tmp_path / "recipes" / "items" / "2026-11-22.parquet"
    assert pq.read_metadata(items.path).num_rows == items.rows == 1_500
    assert pq.read_metadata(events.path).num_rows == events.rows
    assert items.classes == data.class_counts(DAY, 1_500)
    assert [p.name for p in tmp_path.rglob(".*")] == [], "no partial files left behind"


def test_write_day_keeps_an_existing_partition_unless_told_to_overwrite(tmp_path: Path) -> None:
    path = data.write_day(tmp_path, DAY, rows=100)[1].path
    before = path.stat().st_mtime_ns
    data.write_day(tmp_path, DAY, rows=100)
    assert path.stat().st_mtime_ns == before
    data.write_day(tmp_path, DAY, rows=100, overwrite=True)
    assert path.stat().st_mtime_ns != before


def test_large_tables_are_written_in_several_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The chunk size is lowered so the chunked path is exercised at test speed.
    monkeypatch.setattr(data, "CHUNK_ROWS", 2_000)
    path = data.write_day(tmp_path, DAY, rows=9_000)[1].path
    metadata = pq.read_metadata(path)
    assert metadata.num_rows == 9_000
    assert metadata.num_row_groups == 5
    recipe_ids = pq.read_table(path, columns=["recipe_id"]).column("recipe_id").to_pylist()
    assert recipe_ids == list(range(1, 9_001))
