"""The Athena suite, run on both sides with the same SQL and data.

Local side: the SQL on DuckDB through sqlglot, really computed. Cloud side: boto3 against the moto
server: start_query_execution (workgroup, output location, ExecutionParameters), polling through
moto's QUEUED → RUNNING → SUCCEEDED states, paginated GetQueryResults typed into Arrow, and Glue
external tables for ``tables=``. moto does not run SQL: each test hands it, through its documented
``/moto-api/static/athena/query-results`` endpoint, the result set Athena itself returns for the
query (written out by hand below, header row included, as Athena sends it), and both sides must
agree with that answer.

What moto leaves uncovered: executing the SQL (so the cloud side proves request, polling and
decoding, not Athena's semantics), binding ExecutionParameters (we check what was sent), a FAILED
state with its StateChangeReason (tested on Athena's documented response shape instead), a real
``DataScannedInBytes`` (always 0), result pagination across pages, reading Glue tables, and CTAS
writing Parquet (moto writes nothing, which the CTAS test turns into the error a user would see).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from steps.backends import athena
from steps.backends.sql_errors import SqlError
from steps.core.contract import ArtifactRef
from steps.core.errors import HandoffFailed, NotFoundError, UserError
from steps.core.settings import Settings, load_settings
from steps.runtime.context import StepContext
from steps.runtime.values import write_value
from steps.storage.aws import client_for
from tests.backends.conftest import make_context

pytestmark = pytest.mark.integration

GROUPED_SQL = """
SELECT region, count(*) AS orders, sum(amount) AS total, avg(amount) AS mean, max(day) AS last_day
FROM orders
WHERE amount >= :min_amount
GROUP BY region
ORDER BY region
"""
# What Athena returns for GROUPED_SQL over the orders below with min_amount = 20.
GROUPED_COLUMNS = [
    ("region", "varchar"),
    ("orders", "bigint"),
    ("total", "bigint"),
    ("mean", "double"),
    ("last_day", "date"),
]
GROUPED_ROWS = [["eu", "2", "140", "70.0", "2026-01-05"], ["us", "2", "80", "40.0", "2026-01-04"]]
GROUPED_EXPECTED = [
    {"region": "eu", "orders": 2, "total": 140, "mean": 70.0, "last_day": dt.date(2026, 1, 5)},
    {"region": "us", "orders": 2, "total": 80, "mean": 40.0, "last_day": dt.date(2026, 1, 4)},
]


@pytest.fixture
def tables_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tables"
    (root / "sales").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "id": [1, 2, 3, 4, 5],
                "region": ["eu", "eu", "us", "us", "eu"],
                "amount": [5, 50, 30, 50, 90],
                "day": [dt.date(2026, 1, d) for d in (1, 2, 3, 4, 5)],
            }
        ),
        root / "sales" / "orders.parquet",
    )
    return root


class Side:
    """One side: its settings; on the cloud side, ``answer`` queues Athena's result set in moto."""

    def __init__(self, name: str, settings: Settings, moto: str | None) -> None:
        self.name, self.settings, self.moto = name, settings, moto

    def answer(self, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
        if self.moto is None:
            return  # DuckDB computes the answer itself
        header = {"Data": [{"VarCharValue": name} for name, _ in columns]}
        body = {
            "results": [
                {
                    "rows": [header]
                    + [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
                    "column_info": [
                        {"Name": name, "Label": name, "Type": kind, "Nullable": "UNKNOWN", "CaseSensitive": False}
                        for name, kind in columns
                    ],
                }
            ]
        }
        request = urllib.request.Request(
            f"{self.moto}/moto-api/static/athena/query-results",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        assert urllib.request.urlopen(request).status == 201


@pytest.fixture(params=["local", "cloud"])
def side(request: pytest.FixtureRequest, tables_dir: Path, tmp_path: Path) -> Iterator[Side]:
    if request.param == "local":
        settings = load_settings(
            {"profile": "local", "artifact_root": str(tmp_path / "artifacts"), "local_tables": str(tables_dir)}
        )
        yield Side("local", settings, None)
        return
    yield cloud_side(request.getfixturevalue("s3_root"), request.getfixturevalue("aws_env"))


def cloud_side(s3_root: str, moto: str) -> Side:
    settings = load_settings({"profile": "aws", "artifact_root": s3_root, "athena_workgroup": "primary"})
    return Side("cloud", settings, moto)


@pytest.fixture
def cloud(s3_root: str, aws_env: str) -> Side:
    return cloud_side(s3_root, aws_env)


def run(side: Side, sql: str, **kwargs: Any) -> tuple[pa.Table, StepContext, ArtifactRef]:
    ctx = make_context(side.settings, task="aggregate")
    ref = athena.query(ctx, sql, **kwargs)
    return ctx.artifact(ref).read_arrow(), ctx, ref


def last_execution(side: Side) -> dict[str, Any]:
    athena_client = client_for("athena", region="us-east-1", endpoint_url=side.moto)
    ids = athena_client.list_query_executions()["QueryExecutionIds"]
    execution: dict[str, Any] = athena_client.get_query_execution(QueryExecutionId=ids[-1])["QueryExecution"]
    return execution


def test_grouped_query_gives_the_same_rows_and_schema_on_both_sides(side: Side) -> None:
    side.answer(GROUPED_COLUMNS, GROUPED_ROWS)

    table, ctx, ref = run(side, GROUPED_SQL, database="sales", params={"min_amount": 20})

    assert table.to_pylist() == GROUPED_EXPECTED
    assert table.schema == pa.schema(
        [
            ("region", pa.string()),
            ("orders", pa.int64()),
            ("total", pa.int64()),
            ("mean", pa.float64()),
            ("last_day", pa.date32()),
        ]
    )
    assert ref.uri.endswith("/demo/r1/aggregate/result.parquet")
    assert (ref.rows, ref.format) == (2, "parquet")
    assert "data_scanned_bytes" in ctx.records


def test_named_parameters_reach_athena_as_execution_parameters(cloud: Side) -> None:
    cloud.answer(GROUPED_COLUMNS, GROUPED_ROWS)
    run(cloud, GROUPED_SQL, database="sales", params={"min_amount": 20})

    execution = last_execution(cloud)
    assert execution["ExecutionParameters"] == ["20"]
    assert "amount >= ?" in execution["Query"] and ":min_amount" not in execution["Query"]
    assert execution["QueryExecutionContext"]["Database"] == "sales"
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(
        "s3://headrace-test/artifacts/demo/r1/aggregate/athena/"
    )


def test_positional_parameters_bind_in_params_order_as_literals(side: Side) -> None:
    side.answer([("id", "integer")], [["2"]])

    table, _, _ = run(
        side,
        "SELECT id FROM sales.orders WHERE region = ? AND day = ? AND amount > ?",
        params={"region": "eu", "day": dt.date(2026, 1, 2), "floor": 10},
    )

    assert table.to_pylist() == [{"id": 2}]
    if side.name == "cloud":
        assert last_execution(side)["ExecutionParameters"] == ["'eu'", "DATE '2026-01-02'", "10"]


def test_a_quote_in_a_parameter_is_a_value_not_sql(side: Side) -> None:
    side.answer([("id", "integer")], [])

    table, _, _ = run(side, "SELECT id FROM sales.orders WHERE region = ?", params={"region": "eu' OR '1'='1"})

    assert table.num_rows == 0
    if side.name == "cloud":
        assert last_execution(side)["ExecutionParameters"] == ["'eu'' OR ''1''=''1'"]


def test_nulls_and_types_survive_the_trip(side: Side) -> None:
    side.answer(
        [("id", "integer"), ("label", "varchar"), ("ratio", "double"), ("ok", "boolean")],
        [["1", None, "0.5", "true"], ["3", "x", None, "false"]],
    )

    table, _, _ = run(
        side,
        "SELECT id, CASE WHEN id > 1 THEN 'x' END AS label, CASE WHEN id = 1 THEN 0.5E0 END AS ratio, "
        "id = 1 AS ok FROM sales.orders WHERE id IN (1, 3) ORDER BY id",
    )

    assert table.to_pylist() == [
        {"id": 1, "label": None, "ratio": 0.5, "ok": True},
        {"id": 3, "label": "x", "ratio": None, "ok": False},
    ]


def test_upstream_output_is_queried_by_name_and_registered_in_glue(side: Side) -> None:
    upstream = make_context(side.settings, task="prepare")
    data = pa.table({"sku": ["a", "b", "a"], "qty": pa.array([1, 2, 3], pa.int32())})
    ref = write_value(upstream.store, upstream.output_key("out"), data)
    side.answer([("sku", "varchar"), ("qty", "bigint")], [["a", "4"], ["b", "2"]])

    table, ctx, _ = run(
        side,
        "SELECT sku, sum(qty) AS qty FROM staged GROUP BY sku ORDER BY sku",
        database="work",
        tables={"staged": ref},
    )

    assert table.to_pylist() == [{"sku": "a", "qty": 4}, {"sku": "b", "qty": 2}]
    if side.name == "cloud":
        glue = client_for("glue", region="us-east-1", endpoint_url=side.moto)
        registered = glue.get_table(DatabaseName="work", Name="staged")["Table"]
        descriptor = registered["StorageDescriptor"]
        assert descriptor["Columns"] == [{"Name": "sku", "Type": "string"}, {"Name": "qty", "Type": "int"}]
        assert descriptor["Location"] == "s3://headrace-test/artifacts/demo/r1/aggregate/tables/staged/"
        assert ctx.store.exists(descriptor["Location"] + "data.parquet")
        # A second run updates the table instead of failing on "already exists".
        run(side, "SELECT sku FROM staged", database="work", tables={"staged": ref})


def test_missing_column_on_duckdb_names_it_and_its_line(tables_dir: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)), task="aggregate")
    with pytest.raises(SqlError, match=r"line 3: column nope not found") as caught:
        athena.query(ctx, "SELECT id,\n  region\n  , nope\nFROM orders", database="sales")
    assert "\n" not in str(caught.value)
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("result") + ".parquet"))


def test_missing_table_says_where_it_was_looked_for(tables_dir: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)), task="aggregate")
    with pytest.raises(NotFoundError, match=r"table nothere not found; looked in .*sales/nothere\.parquet"):
        athena.query(ctx, "SELECT id FROM nothere", database="sales")


def test_syntax_error_on_duckdb_shows_the_line(tables_dir: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)), task="aggregate")
    with pytest.raises(UserError, match=r"line 2: syntax error"):
        athena.query(ctx, "SELECT id\nFROM orders WHERE", database="sales")


def test_wrong_number_of_positional_parameters_is_refused(side: Side) -> None:
    with pytest.raises(UserError, match=r"2 \? parameter\(s\) but params= gives 1"):
        run(side, "SELECT id FROM sales.orders WHERE id = ? OR id = ?", params={"a": 1})


def test_failed_execution_raises_handoff_failed_with_athena_reason() -> None:
    execution = {
        "QueryExecutionId": "q-1",
        "Status": {
            "State": "FAILED",
            "StateChangeReason": "COLUMN_NOT_FOUND: line 3:5: Column 'nope' cannot be resolved\nor requested",
            "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006},
        },
    }
    with pytest.raises(
        HandoffFailed, match=r"Athena query q-1 failed: COLUMN_NOT_FOUND: line 3:5: Column 'nope'"
    ) as caught:
        athena.check_state(execution, "aggregate")
    assert caught.value.reason.startswith("COLUMN_NOT_FOUND: line 3:5")
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2  # a user error in the SQL: no retry helps


def test_every_athena_state_maps_to_ours() -> None:
    assert athena.check_state({"Status": {"State": "QUEUED"}}, "t") == "running"
    assert athena.check_state({"Status": {"State": "RUNNING"}}, "t") == "running"
    assert athena.check_state({"Status": {"State": "SUCCEEDED"}}, "t") == "succeeded"
    system_failure = {"State": "FAILED", "StateChangeReason": "Internal error", "AthenaError": {"ErrorCategory": 1}}
    with pytest.raises(HandoffFailed) as caught:
        athena.check_state({"QueryExecutionId": "q", "Status": system_failure}, "t")
    assert caught.value.exit_code == 4 and caught.value.retryable
    with pytest.raises(HandoffFailed, match="q cancelled: cancelled"):
        athena.check_state({"QueryExecutionId": "q", "Status": {"State": "CANCELLED"}}, "t")
    with pytest.raises(HandoffFailed, match="unknown state PAUSED"):
        athena.check_state({"QueryExecutionId": "q", "Status": {"State": "PAUSED"}}, "t")


def test_ctas_asks_athena_for_parquet_under_the_task_output_and_checks_it_arrived(cloud: Side) -> None:
    ctx = make_context(cloud.settings, task="aggregate")
    with pytest.raises(
        HandoffFailed,
        match=r"CTAS reported success but wrote no Parquet under s3://headrace-test/artifacts/demo/r1/aggregate/result/",
    ):
        athena.query(ctx, GROUPED_SQL, database="sales", params={"min_amount": 20}, ctas=True)

    query = last_execution(cloud)["Query"]
    assert query.startswith("CREATE TABLE sales.headrace_r1_aggregate_1 WITH (format = 'PARQUET'")
    assert "external_location = 's3://headrace-test/artifacts/demo/r1/aggregate/result/'" in query
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("result")))


def test_ctas_result_is_referenced_with_rows_once_athena_wrote_it(cloud: Side, tmp_path: Path) -> None:
    """What Athena's CTAS leaves behind (Parquet files under the location) becomes one artifact."""
    ctx = make_context(cloud.settings, task="aggregate")
    store = athena.s3_store(ctx)
    for index, rows in enumerate(([1, 2], [3])):
        path = tmp_path / f"part-{index}.parquet"
        pq.write_table(pa.table({"x": rows}), path)
        store.put_file(path, f"{ctx.output_key('result')}/part-{index}.parquet")

    ref = athena.ctas_result(ctx, store, ctx.output_key("result"), "sales", "gone")

    assert (ref.rows, ref.format) == (3, "parquet")
    assert store.exists(ref.uri)
    assert sorted(ctx.artifact(ref).read_arrow().column("x").to_pylist()) == [1, 2, 3]


def test_local_ctas_flag_gives_the_same_parquet_result(tables_dir: Path, local_settings: Settings) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)), task="aggregate")
    ref = athena.query(ctx, GROUPED_SQL, database="sales", params={"min_amount": 20}, ctas=True)
    assert ctx.artifact(ref).read_arrow().to_pylist() == GROUPED_EXPECTED


def test_folder_output_is_registered_where_it_lies(cloud: Side, tmp_path: Path) -> None:
    folder = tmp_path / "scores"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1], "score": [0.5]}), folder / "part-0.parquet")
    pq.write_table(pa.table({"id": [2], "score": [0.7]}), folder / "part-1.parquet")
    upstream = make_context(cloud.settings, task="score")
    ref = upstream.store.put_file(folder, upstream.output_key("scores"), rows=2)
    cloud.answer([("n", "bigint")], [["2"]])

    table, _, _ = run(cloud, "SELECT count(*) AS n FROM scores", database="work", tables={"scores": ref})

    assert table.to_pylist() == [{"n": 2}]
    glue = client_for("glue", region="us-east-1", endpoint_url=cloud.moto)
    descriptor = glue.get_table(DatabaseName="work", Name="scores")["Table"]["StorageDescriptor"]
    assert descriptor["Location"] == "s3://headrace-test/artifacts/demo/r1/score/scores/"
    assert descriptor["Columns"] == [{"Name": "id", "Type": "bigint"}, {"Name": "score", "Type": "double"}]


def test_result_pages_become_one_batch_each_and_only_the_first_has_a_header() -> None:
    info = [{"Name": "word", "Label": "word", "Type": "varchar"}, {"Name": "at", "Label": "at", "Type": "timestamp"}]

    def page(*rows: list[str | None]) -> dict[str, Any]:
        data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows]
        return {"ResultSet": {"Rows": data, "ResultSetMetadata": {"ColumnInfo": info}}}

    pages = [
        page(["word", "at"], ["a", "2026-01-01 10:00:00.000"]),
        page(["word", None]),
        page(["b", "2026-01-02 00:00:00.123"]),
    ]

    assert [b.num_rows for b in athena.result_batches(pages)] == [1, 1, 1]
    table = athena.results_table(pages)
    assert table.column("word").to_pylist() == ["a", "word", "b"]  # page 2's row is data, not a header
    assert table.column("at").to_pylist() == [
        dt.datetime(2026, 1, 1, 10),
        None,
        dt.datetime(2026, 1, 2, 0, 0, 0, 123000),
    ]
    assert table.schema == pa.schema([("word", pa.string()), ("at", pa.timestamp("us"))])


def test_athena_output_setting_overrides_where_athena_writes_its_results(s3_root: str, aws_env: str) -> None:
    settings = load_settings(
        {"profile": "aws", "artifact_root": s3_root, "athena_output": "s3://headrace-test/athena/"}
    )
    side = Side("cloud", settings, aws_env)
    side.answer([("n", "bigint")], [["5"]])

    table, _, _ = run(side, "SELECT count(*) AS n FROM orders", database="sales")

    assert table.to_pylist() == [{"n": 5}]
    assert last_execution(side)["ResultConfiguration"]["OutputLocation"].startswith("s3://headrace-test/athena/")


def test_zoned_timestamps_arrays_maps_and_rows_come_back_typed_as_on_the_local_side(side: Side) -> None:
    side.answer(
        [
            ("at", "timestamp with time zone"),
            ("tags", "array(varchar)"),
            ("counts", "map(varchar, integer)"),
            ("pair", "row(a integer, b varchar)"),
            ("price", "decimal(10,2)"),
        ],
        [["2024-01-02 01:04:05.000 UTC", "[x, y]", "{k=1}", "{a=1, b=z}", "3.50"]],
    )

    table, _, _ = run(
        side,
        "SELECT from_unixtime(1704157445) AS at, ARRAY['x', 'y'] AS tags, map(ARRAY['k'], ARRAY[1]) AS counts, "
        "CAST(ROW(1, 'z') AS ROW(a integer, b varchar)) AS pair, CAST('3.50' AS decimal(10, 2)) AS price",
    )

    assert table.to_pylist() == [
        {
            "at": dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=dt.UTC),
            "tags": ["x", "y"],
            "counts": [("k", 1)],
            "pair": {"a": 1, "b": "z"},
            "price": decimal.Decimal("3.50"),
        }
    ]
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("counts").type == pa.map_(pa.string(), pa.int64())


def test_a_zoned_timestamp_in_a_region_zone_is_the_same_instant(cloud: Side) -> None:
    cloud.answer([("at", "timestamp with time zone")], [["2024-07-01 12:00:00.000 America/New_York"]])

    table, _, _ = run(cloud, "SELECT TIMESTAMP '2024-07-01 12:00:00 America/New_York' AS at")

    assert table.column("at").to_pylist() == [dt.datetime(2024, 7, 1, 16, tzinfo=dt.UTC)]


def test_bare_array_metadata_takes_its_element_type_from_the_query(cloud: Side) -> None:
    cloud.answer([("ids", "array")], [["[3, 1, null]"]])

    table, _, _ = run(cloud, "SELECT CAST(ARRAY[3, 1, NULL] AS ARRAY(BIGINT)) AS ids")

    assert table.to_pylist() == [{"ids": [3, 1, None]}]
    assert table.schema.field("ids").type == pa.list_(pa.int64())


def test_an_array_whose_element_type_nobody_states_is_refused_with_the_fix(cloud: Side) -> None:
    cloud.answer([("tags", "array")], [["[a, b]"]])

    with pytest.raises(HandoffFailed, match=r"column tags: .*only as array.*CAST it in the SQL"):
        run(cloud, "SELECT tags FROM sales.orders")
