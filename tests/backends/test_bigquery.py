"""The BigQuery extract suite, run on both sides with the same SQL and data.

The cloud side is the official google-cloud-bigquery client against
``tests/integration/bigquery_server.py``, a local server speaking BigQuery's REST API (jobs.insert
with dry runs, jobs.get, jobs.getQueryResults in pages, tables.get, tabledata.list) that really
executes each query on DuckDB. Why not an emulator: there is no maintained BigQuery emulator on
PyPI; the known one (goccy/bigquery-emulator) is a Go binary fetched outside the package registries,
and ZetaSQL-based builds are heavy. Our server exercises everything headrace owns on the wire
(request building, typed query parameters, dry-run statistics, pagination, BigQuery's error shape,
row decoding into Arrow) with real results. Left uncovered: BigQuery's own SQL engine (ZetaSQL
semantics), the Storage Read API (gRPC, used only against Google's endpoint), auth and billing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from steps import bigquery
from steps.context import StepContext
from steps.contract import ArtifactRef
from steps.errors import ConfigError, NotFoundError, UserError
from steps.settings import Settings, load_settings
from steps.sql_local import SqlError
from steps.values import write_value
from tests.backends.conftest import make_context
from tests.integration.bigquery_server import BigQueryServer

pytestmark = pytest.mark.integration

JOIN_SQL = """
SELECT c.name, COUNT(*) AS orders, SUM(o.amount) AS total
FROM `test-project.shop.orders` AS o
JOIN shop.customers AS c ON c.id = o.customer_id
WHERE o.amount >= @min_amount
  AND o.day >= @since
  AND c.region IN UNNEST(@regions)
GROUP BY c.name
ORDER BY total DESC
"""


@pytest.fixture
def tables_dir(tmp_path: Path) -> Path:
    root = tmp_path / "tables"
    (root / "shop").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "id": [1, 2, 3, 4, 5, 6],
                "customer_id": [10, 10, 20, 20, 30, 30],
                "amount": [5, 50, 70, 30, 90, 10],
                "day": [dt.date(2026, 1, d) for d in (1, 2, 3, 4, 5, 6)],
            }
        ),
        root / "shop" / "orders.parquet",
    )
    pacsv.write_csv(
        pa.table({"id": [10, 20, 30], "name": ["ann", "bob", "cy"], "region": ["eu", "us", "eu"]}),
        root / "shop" / "customers.csv",
    )
    return root


class Side:
    """One side of the backend: its settings and, on the cloud side, the BigQuery server."""

    def __init__(self, name: str, settings: Settings, server: BigQueryServer | None) -> None:
        self.name, self.settings, self.server = name, settings, server


def local_side(tables_dir: Path, tmp_path: Path) -> Side:
    settings = load_settings(
        {"profile": "local", "artifact_root": str(tmp_path / "artifacts"), "local_tables": str(tables_dir)}
    )
    return Side("local", settings, None)


@contextlib.contextmanager
def cloud_side(tables_dir: Path, s3_root: str) -> Iterator[Side]:
    with BigQueryServer(tables_dir, project="test-project", page_size=2) as server:
        settings = load_settings(
            {
                "profile": "aws",
                "artifact_root": s3_root,
                "bigquery_project": "test-project",
                "bigquery_endpoint": server.url,
            }
        )
        yield Side("cloud", settings, server)


@pytest.fixture(params=["local", "cloud"])
def side(request: pytest.FixtureRequest, tables_dir: Path, tmp_path: Path) -> Iterator[Side]:
    if request.param == "local":
        yield local_side(tables_dir, tmp_path)
        return
    with cloud_side(tables_dir, request.getfixturevalue("s3_root")) as cloud:
        yield cloud


@pytest.fixture
def cloud(tables_dir: Path, s3_root: str) -> Iterator[Side]:
    with cloud_side(tables_dir, s3_root) as side:
        yield side


def run(
    side: Side, sql: str, params: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[pa.Table, StepContext, ArtifactRef]:
    ctx = make_context(side.settings)
    ref = bigquery.extract(ctx, sql, params, **kwargs)
    return ctx.artifact(ref).read_arrow(), ctx, ref


def test_query_with_bound_parameters_gives_the_same_rows_on_both_sides(side: Side) -> None:
    params = {"min_amount": 20, "since": dt.date(2026, 1, 2), "regions": ["eu", "us"]}

    table, _, ref = run(side, JOIN_SQL, params)

    assert table.to_pylist() == [
        {"name": "bob", "orders": 2, "total": 100},
        {"name": "cy", "orders": 1, "total": 90},
        {"name": "ann", "orders": 1, "total": 50},
    ]
    assert table.schema == pa.schema([("name", pa.string()), ("orders", pa.int64()), ("total", pa.int64())])
    assert ref.uri.endswith("/demo/r1/extract/result.parquet")
    assert (ref.rows, ref.format) == (3, "parquet")
    assert ref.bytes > 0


def test_dry_run_estimate_is_logged_and_recorded_from_the_tables_read(side: Side, tables_dir: Path) -> None:
    _, ctx, _ = run(side, JOIN_SQL, {"min_amount": 0, "since": dt.date(2026, 1, 1), "regions": ["eu"]})

    table_bytes = sum(p.stat().st_size for p in (tables_dir / "shop").iterdir())
    assert ctx.records["bigquery_bytes_estimate"] == table_bytes


def test_cloud_results_arrive_through_rest_pages_without_the_storage_api(cloud: Side) -> None:
    table, ctx, _ = run(cloud, "SELECT id, day FROM shop.orders ORDER BY id", None)

    assert table.column("id").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert table.column("day").to_pylist()[0] == dt.date(2026, 1, 1)
    assert cloud.server is not None
    pages = [path for _, path in cloud.server.requests if "/queries/" in path or path.endswith("/data")]
    assert len(pages) >= 3  # six rows in pages of two
    assert ctx.records["bigquery_read"] == "rest-pages"


def test_parameter_values_are_bound_never_spliced_into_the_sql(side: Side) -> None:
    table, _, _ = run(side, "SELECT id FROM shop.customers WHERE name = @name", {"name": "ann' OR '1'='1"})

    assert table.num_rows == 0


def test_missing_column_names_it_and_its_sql_line_and_writes_nothing(side: Side) -> None:
    ctx = make_context(side.settings)
    with pytest.raises(UserError, match=r"line 3: .*nope") as caught:
        bigquery.extract(ctx, "SELECT\n  id,\n  nope\nFROM shop.orders")

    assert "\n" not in str(caught.value)
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("result") + ".parquet"))


def test_missing_table_names_it(side: Side) -> None:
    ctx = make_context(side.settings)
    with pytest.raises(NotFoundError, match=r"shop\.nothere") as caught:
        bigquery.extract(ctx, "SELECT id FROM shop.nothere")
    if side.name == "local":
        assert "shop/nothere.parquet" in str(caught.value)  # where it was looked for


def test_syntax_error_shows_the_line(side: Side) -> None:
    ctx = make_context(side.settings)
    with pytest.raises(UserError, match=r"line 2: .*[Ss]yntax error"):
        bigquery.extract(ctx, "SELECT id\nFROM shop.orders WHERE")


def test_construct_not_verified_locally_is_named_not_run(local_settings: Settings, tables_dir: Path) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)))
    with pytest.raises(
        SqlError, match=r"line 1: function APPROX_TOP_K is not verified to answer as BigQuery does"
    ) as caught:
        bigquery.extract(ctx, "SELECT APPROX_TOP_COUNT(region, 2) AS top FROM shop.customers")
    assert caught.value.kind == "unsupported"
    with pytest.raises(SqlError, match=r"line 2: EXTRACT\(WEEK \.\.\.\) is not verified"):
        bigquery.extract(ctx, "SELECT id,\n  EXTRACT(WEEK FROM day) AS w FROM shop.orders")
    assert not ctx.store.exists(ctx.store.uri_for(ctx.output_key("result") + ".parquet"))


def test_day_of_week_counts_from_sunday_as_bigquery_does(local_settings: Settings, tables_dir: Path) -> None:
    ctx = make_context(local_settings.replace(local_tables=str(tables_dir)))
    out = bigquery.extract(ctx, "SELECT EXTRACT(DAYOFWEEK FROM day) AS d FROM shop.orders WHERE id = 4")

    assert ctx.artifact(out).read_arrow().to_pylist() == [{"d": 1}]  # 2026-01-04 is a Sunday


def test_upstream_output_is_queried_by_name(local_settings: Settings) -> None:
    upstream = make_context(local_settings, task="prepare")
    ref = write_value(upstream.store, upstream.output_key("out"), pa.table({"k": ["a", "b", "a"], "v": [1, 2, 3]}))

    ctx = make_context(local_settings)
    out = bigquery.extract(
        ctx, "SELECT k, SUM(v) AS v FROM recent WHERE v > @floor GROUP BY k ORDER BY k", {"floor": 1}, {"recent": ref}
    )

    assert ctx.artifact(out).read_arrow().to_pylist() == [{"k": "a", "v": 3}, {"k": "b", "v": 2}]


def test_cloud_side_refuses_upstream_tables_with_the_fix(cloud: Side) -> None:
    with pytest.raises(UserError, match=r"tables= \(recent\) only works on the local profile"):
        bigquery.extract(make_context(cloud.settings), "SELECT 1 AS x", tables={"recent": Path("x.parquet")})


def test_cloud_profile_without_a_project_names_the_setting(tmp_path: Path) -> None:
    settings = load_settings({"profile": "aws", "artifact_root": str(tmp_path / "a")})
    with pytest.raises(ConfigError, match="HEADRACE_BIGQUERY_PROJECT"):
        bigquery.extract(make_context(settings), "SELECT 1 AS x")


def test_python_values_become_typed_query_parameters() -> None:
    typed = {
        name: bigquery.query_parameter(name, value).to_api_repr()["parameterType"]
        for name, value in {
            "flag": True,
            "n": 3,
            "x": 1.5,
            "day": dt.date(2026, 1, 1),
            "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            "names": ["a", "b"],
        }.items()
    }
    assert typed == {
        "flag": {"type": "BOOL"},
        "n": {"type": "INT64"},
        "x": {"type": "FLOAT64"},
        "day": {"type": "DATE"},
        "at": {"type": "TIMESTAMP"},
        "names": {"type": "ARRAY", "arrayType": {"type": "STRING"}},
    }
    with pytest.raises(UserError, match="@empty: an empty list"):
        bigquery.query_parameter("empty", [])


def test_timestamps_floats_booleans_and_nulls_survive_both_sides(side: Side) -> None:
    table, _, _ = run(
        side,
        """
        SELECT id,
               TIMESTAMP_ADD(TIMESTAMP '2026-01-01 00:00:00+00', INTERVAL id HOUR) AS at,
               IF(id > 4, NULL, amount / 4) AS quarter,
               amount > 40 AS big
        FROM shop.orders WHERE id <= 5 ORDER BY id
        """,
    )

    assert table.column("at").to_pylist()[0] == dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC)
    assert table.column("quarter").to_pylist() == [1.25, 12.5, 17.5, 7.5, None]
    assert table.column("big").to_pylist() == [False, True, True, False, True]
    assert table.schema.field("at").type == pa.timestamp("us", tz="UTC")


def test_empty_result_is_a_parquet_file_with_its_columns(side: Side) -> None:
    table, _, ref = run(side, "SELECT id, day FROM shop.orders WHERE amount > @cap", {"cap": 1000})

    assert ref.rows == 0
    assert table.num_rows == 0
    assert table.schema == pa.schema([("id", pa.int64()), ("day", pa.date32())])
