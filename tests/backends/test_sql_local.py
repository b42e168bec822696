"""The local SQL engine shared by BigQuery and Athena: real sqlglot, real DuckDB, real files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from steps.backends.sql_local import (
    LocalSql,
    MissingTable,
    SqlError,
    canonical,
    name_positional_parameters,
    positional_parameters,
)


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    root = tmp_path / "tables"
    (root / "shop" / "events").mkdir(parents=True)
    pq.write_table(pa.table({"id": [1, 2], "kind": ["a", "b"]}), root / "shop" / "events" / "part-0.parquet")
    pq.write_table(pa.table({"id": [3], "kind": ["a"]}), root / "shop" / "events" / "part-1.parquet")
    pacsv.write_csv(pa.table({"code": ["a", "b"], "label": ["Alpha", "Beta"]}), root / "shop" / "kinds.csv")
    pq.write_table(pa.table({"n": [7]}), root / "top.parquet")
    return root


def test_bigquery_names_map_onto_the_folder_layout(tables: Path) -> None:
    engine = LocalSql("bigquery", tables_dir=tables)

    result, prepared = engine.run(
        """
        SELECT k.label, COUNT(*) AS n
        FROM `my-project.shop.events` AS e
        JOIN shop.kinds AS k ON k.code = e.kind
        CROSS JOIN top
        GROUP BY k.label ORDER BY k.label
        """
    )

    assert result.to_pylist() == [{"label": "Alpha", "n": 2}, {"label": "Beta", "n": 1}]
    assert prepared.source_bytes == sum(p.stat().st_size for p in tables.rglob("*") if p.is_file())


def test_unqualified_column_prefix_by_table_name_still_works(tables: Path) -> None:
    result, _ = LocalSql("bigquery", tables_dir=tables).run("SELECT events.id FROM shop.events ORDER BY events.id")
    assert result.column("id").to_pylist() == [1, 2, 3]


def test_tables_argument_wins_over_files_and_ctes_are_not_tables(tables: Path, tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.parquet"
    pq.write_table(pa.table({"n": [100, 200]}), upstream)
    engine = LocalSql("bigquery", tables_dir=tables, tables={"top": upstream})

    result, _ = engine.run("WITH doubled AS (SELECT n * 2 AS n FROM top) SELECT SUM(n) AS total FROM doubled")

    assert result.to_pylist() == [{"total": 600}]


def test_athena_unqualified_names_look_in_the_query_database_first(tables: Path) -> None:
    engine = LocalSql("athena", tables_dir=tables, default_database="shop")
    result, _ = engine.run("SELECT count(*) AS n FROM events")
    assert result.to_pylist() == [{"n": 3}]


def test_missing_table_lists_every_place_it_looked(tables: Path) -> None:
    engine = LocalSql("athena", tables_dir=tables, default_database="shop", tables={"staged": tables / "top.parquet"})
    with pytest.raises(MissingTable) as caught:
        engine.run("SELECT 1\nFROM\n  nothere")
    message = str(caught.value)
    assert "line 3: table nothere not found" in message
    assert "tables= (staged)" in message
    assert f"{tables}/shop/nothere.parquet|.csv|/" in message
    assert f"{tables}/nothere.parquet|.csv|/" in message


def test_missing_tables_folder_setting_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingTable, match="HEADRACE_LOCAL_TABLES"):
        LocalSql("bigquery").run("SELECT * FROM shop.orders")


def test_parameters_are_prepared_statement_values(tables: Path) -> None:
    engine = LocalSql("bigquery", tables_dir=tables)
    result, prepared = engine.run(
        "SELECT id FROM shop.events WHERE kind IN UNNEST(@kinds) AND id > @floor ORDER BY id",
        {"kinds": ["a"], "floor": 1, "unused": "x"},
    )
    assert result.column("id").to_pylist() == [3]
    assert "$kinds" in prepared.sql and "'a'" not in prepared.sql
    assert prepared.parameters == {"kinds": ["a"], "floor": 1}


def test_engine_error_points_at_the_users_line_not_the_translation(tables: Path) -> None:
    engine = LocalSql("bigquery", tables_dir=tables)
    with pytest.raises(SqlError) as caught:
        engine.run("SELECT id,\n  kind,\n  id + 'text' AS broken\nFROM shop.events")
    assert caught.value.line == 3
    assert str(caught.value).startswith("BigQuery SQL line 3: ")
    assert "\n" not in str(caught.value)


def test_unnest_with_offset_is_refused_because_duckdb_counts_from_one() -> None:
    with pytest.raises(SqlError, match=r"WITH OFFSET is not verified.*\(BigQuery offsets start at 0"):
        LocalSql("bigquery").run("SELECT x, o FROM UNNEST([10, 20]) AS x WITH OFFSET AS o")


def test_more_than_one_statement_is_refused() -> None:
    with pytest.raises(SqlError, match="expected one statement, found 2"):
        LocalSql("bigquery").run("SELECT 1; SELECT 2")


def test_question_marks_become_named_parameters_except_inside_strings() -> None:
    sql = "SELECT '?' AS q FROM t WHERE a = ? AND b = ?"
    assert name_positional_parameters(sql, "athena", ["x", "y"]) == "SELECT '?' AS q FROM t WHERE a = :x AND b = :y"
    with pytest.raises(SqlError, match=r"2 \? parameter\(s\) but params= gives 1"):
        name_positional_parameters(sql, "athena", ["x"])


def test_named_parameters_become_question_marks_in_order() -> None:
    sql = "SELECT ':not_me' FROM t WHERE a = :x AND b = :y OR c = :x"
    assert positional_parameters(sql, "athena") == (
        "SELECT ':not_me' FROM t WHERE a = ? AND b = ? OR c = ?",
        ["x", "y", "x"],
    )


def test_canonical_schema_is_the_same_whatever_the_engine_widths() -> None:
    table = pa.table(
        {
            "small": pa.array([1], pa.int32()),
            "summed": pa.array([12], pa.decimal128(38, 0)),
            "price": pa.array([1], pa.decimal128(10, 2)),
            "f": pa.array([1.5], pa.float32()),
            "s": pa.array(["x"], pa.large_string()),
            "at": pa.array([dt.datetime(2026, 1, 1)], pa.timestamp("ns")),
        }
    )
    assert canonical(table).schema == pa.schema(
        [
            ("small", pa.int64()),
            ("summed", pa.int64()),
            ("price", pa.decimal128(38, 2)),  # engines report different precisions; the scale is the answer
            ("f", pa.float64()),
            ("s", pa.string()),
            ("at", pa.timestamp("us")),
        ]
    )


def test_results_stream_to_parquet_one_batch_at_a_time(tmp_path: Path) -> None:
    source = tmp_path / "big.parquet"
    pq.write_table(pa.table({"n": pa.array(range(5000), pa.int32())}), source)
    target = tmp_path / "out.parquet"

    rows, _ = LocalSql("athena", tables={"big": source}).run_to_parquet(
        "SELECT n, n * 2 AS twice FROM big WHERE n >= :low", {"low": 0}, target, batch_rows=1000
    )

    assert rows == 5000
    written = pq.ParquetFile(target)
    assert written.metadata.num_rows == 5000
    assert written.metadata.num_row_groups >= 5  # one per batch: never the whole result in memory
    assert written.schema_arrow == pa.schema([("n", pa.int64()), ("twice", pa.int64())])
