"""Athena (Trino) queries with the answers Trino's documentation gives (section named per group).

References are to https://trino.io/docs/current/ pages: ``functions/math`` (mathematical
operators and functions), ``functions/conversion``, ``functions/string``,
``functions/conditional``, ``functions/comparison``, ``functions/logical``,
``functions/aggregate``, ``functions/datetime``, ``functions/array``, ``functions/map``,
``functions/lambda``, ``language/types`` (literals, ROW, MAP), and Athena's
"Querying with parameterized queries" (https://docs.aws.amazon.com/athena/latest/ug/querying-with-prepared-statements.html).
Athena evaluates in UTC. Each value case also carries the column type and text that Athena's
GetQueryResults returns for it, so the cloud side can be run on the same case.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from tests.parity.corpus import UTC, Case, Raises, Rows

INT, FLOAT, STRING, BOOL = pa.int64(), pa.float64(), pa.string(), pa.bool_()
DATE, TIMESTAMP, TIMESTAMPTZ = pa.date32(), pa.timestamp("us"), pa.timestamp("us", tz="UTC")


TODAY = dt.datetime.now(dt.UTC).date()  # the session zone is UTC: current_date is the UTC date


def DECIMAL(scale: int) -> pa.DataType:
    return pa.decimal128(38, scale)


def ARRAY(kind: pa.DataType) -> pa.DataType:
    return pa.list_(kind)


# functions/math: integer division truncates and raises "Division by zero"; double division
# follows IEEE 754 (Infinity, NaN); mod takes the dividend's sign; sqrt(-1) is NaN, ln(0) is
# -Infinity; round() rounds halfway away from zero. language/types: 1.5 is a DECIMAL literal,
# 1.5E0 a DOUBLE; integer overflow raises. functions/conversion: casting a double to an integer
# rounds, a bad string raises, try_cast returns NULL.
ARITHMETIC = [
    Case("arithmetic", "SELECT 7 / 2 AS v", 3, INT, athena=("integer", "3")),
    Case("arithmetic", "SELECT -7 / 2 AS v", -3, INT, athena=("integer", "-3")),
    Case("arithmetic", "SELECT 7 / 0 AS v", Raises("division by zero")),
    Case("arithmetic", "SELECT 7 % 0 AS v", Raises("division by zero")),
    Case("arithmetic", "SELECT 7.0 / 2 AS v", decimal.Decimal("3.5"), DECIMAL(1), athena=("decimal(2,1)", "3.5")),
    Case("arithmetic", "SELECT 7E0 / 2 AS v", 3.5, FLOAT, athena=("double", "3.5")),
    Case("arithmetic", "SELECT 1E0 / 0 AS v", float("inf"), FLOAT, athena=("double", "Infinity")),
    Case("arithmetic", "SELECT 0E0 / 0 AS v", float("nan"), FLOAT, athena=("double", "NaN")),
    Case("arithmetic", "SELECT mod(-7, 2) AS v", -1, INT, athena=("integer", "-1")),
    Case("arithmetic", "SELECT 7 % 3 AS v", 1, INT, athena=("integer", "1")),
    Case("arithmetic", "SELECT 2147483647 + 1 AS v", Raises("overflow")),
    Case("arithmetic", "SELECT 9223372036854775807 + 1 AS v", Raises("overflow")),
    Case("arithmetic", "SELECT round(2.5E0) AS v", 3.0, FLOAT, athena=("double", "3.0")),
    Case("arithmetic", "SELECT round(-2.5E0) AS v", -3.0, FLOAT, athena=("double", "-3.0")),
    Case("arithmetic", "SELECT CAST(2.5E0 AS integer) AS v", 3, INT, athena=("integer", "3")),
    Case("arithmetic", "SELECT CAST(-2.5E0 AS integer) AS v", -3, INT, athena=("integer", "-3")),
    Case("arithmetic", "SELECT CAST('abc' AS integer) AS v", Raises("")),
    Case("arithmetic", "SELECT try_cast('abc' AS integer) AS v", None, INT, athena=("integer", None)),
    Case("arithmetic", "SELECT sqrt(-1E0) AS v", float("nan"), FLOAT, athena=("double", "NaN")),
    Case("arithmetic", "SELECT ln(0E0) AS v", float("-inf"), FLOAT, athena=("double", "-Infinity")),
    Case("arithmetic", "SELECT power(2, 10) AS v", 1024.0, FLOAT, athena=("double", "1024.0")),
    Case("arithmetic", "SELECT abs(-3) AS v", 3, INT, athena=("integer", "3")),
    Case("arithmetic", "SELECT 1.5 + 1 AS v", decimal.Decimal("2.5"), DECIMAL(1), athena=("decimal(12,1)", "2.5")),
]

# functions/string: concat and || return NULL with a NULL argument; length counts code points;
# substr is 1-based, counts from the end when negative, and is empty from position 0 or past either
# end; strpos is 1-based; split returns an array(varchar). functions/conversion: a varchar that is
# not an integer literal can not be cast to an integer (try_cast gives NULL).
STRINGS = [
    Case("strings", "SELECT concat('a', NULL) AS v", None, STRING, athena=("varchar", None)),
    Case("strings", "SELECT 'a' || 'b' AS v", "ab", STRING, athena=("varchar", "ab")),
    Case("strings", "SELECT length('héllo') AS v", 5, INT, athena=("bigint", "5")),
    Case("strings", "SELECT substr('hello', 2, 3) AS v", "ell", STRING, athena=("varchar", "ell")),
    Case("strings", "SELECT substr('hello', -3) AS v", "llo", STRING, athena=("varchar", "llo")),
    Case("strings", "SELECT substr('hello', 0) AS v", "", STRING, athena=("varchar", "")),
    Case("strings", "SELECT substr('hello', -6) AS v", "", STRING, athena=("varchar", "")),
    Case("strings", "SELECT substr('hello', 4, 5) AS v", "lo", STRING, athena=("varchar", "lo")),
    Case("strings", "SELECT CAST('1.5' AS integer) AS v", Raises("cannot cast")),
    Case("strings", "SELECT try_cast('1.5' AS integer) AS v", None, INT, athena=("integer", None)),
    Case("strings", "SELECT upper('abc') AS v", "ABC", STRING, athena=("varchar", "ABC")),
    Case("strings", "SELECT strpos('hello', 'l') AS v", 3, INT, athena=("bigint", "3")),
    Case(
        "strings",
        "SELECT split('a,b,c', ',') AS v",
        ["a", "b", "c"],
        ARRAY(STRING),
        athena=("array(varchar)", "[a, b, c]"),
    ),
    Case("strings", "SELECT trim('  x  ') AS v", "x", STRING, athena=("varchar", "x")),
    Case("strings", "SELECT lpad('7', 3, '0') AS v", "007", STRING, athena=("varchar", "007")),
    Case("strings", "SELECT regexp_like('abc', 'b') AS v", True, BOOL, athena=("boolean", "true")),
    Case("strings", "SELECT reverse('abc') AS v", "cba", STRING, athena=("varchar", "cba")),
    Case("strings", "SELECT 'abc' LIKE 'a%' AS v", True, BOOL, athena=("boolean", "true")),
    Case("strings", "SELECT CAST(1.5E0 AS varchar) AS v", "1.5", STRING, athena=("varchar", "1.5")),
    Case(
        "strings",
        "SELECT CAST(TIMESTAMP '2024-01-01 10:00:00' AS varchar) AS v",
        "2024-01-01 10:00:00.000",
        STRING,
        athena=("varchar", "2024-01-01 10:00:00.000"),
    ),
    Case(
        "strings",
        "SELECT CAST(DATE '2024-03-05' AS varchar) AS v",
        "2024-03-05",
        STRING,
        athena=("varchar", "2024-03-05"),
    ),
    Case(
        "strings",
        "SELECT avg(x) AS v FROM UNNEST(ARRAY[1.0, 2.0]) AS t(x)",
        decimal.Decimal("1.5"),
        DECIMAL(1),
        athena=("decimal(2,1)", "1.5"),
    ),
]

# functions/conditional (coalesce, nullif, if), functions/comparison and functions/logical
# (three-valued logic), functions/aggregate (count(x) skips NULL, sum of no rows is NULL,
# array_agg keeps NULL elements, sum raises on overflow), functions/array (cardinality(NULL) is
# NULL); language/types (a bare NULL has type unknown).
NULLS = [
    Case("nulls", "SELECT coalesce(NULL, 2) AS v", 2, INT, athena=("integer", "2")),
    Case("nulls", "SELECT nullif(1, 1) AS v", None, INT, athena=("integer", None)),
    Case("nulls", "SELECT NULL = NULL AS v", None, BOOL, athena=("boolean", None)),
    Case("nulls", "SELECT if(NULL, 1, 2) AS v", 2, INT, athena=("integer", "2")),
    Case("nulls", "SELECT NULL AND false AS v", False, BOOL, athena=("boolean", "false")),
    Case("nulls", "SELECT NULL OR true AS v", True, BOOL, athena=("boolean", "true")),
    Case("nulls", "SELECT count(x) AS v FROM UNNEST(ARRAY[1, NULL, 3]) AS t(x)", 2, INT, athena=("bigint", "2")),
    Case("nulls", "SELECT sum(x) AS v FROM UNNEST(ARRAY[1]) AS t(x) WHERE x > 5", None, INT, athena=("bigint", None)),
    Case(
        "nulls",
        "SELECT array_agg(x ORDER BY x) AS v FROM UNNEST(ARRAY[3, NULL, 1]) AS t(x)",
        [1, 3, None],
        ARRAY(INT),
        athena=("array(integer)", "[1, 3, null]"),
    ),
    Case("nulls", "SELECT cardinality(NULL) AS v", None, INT, athena=("bigint", None)),
    Case("nulls", "SELECT max(x) AS v FROM UNNEST(ARRAY[1, NULL, 3]) AS t(x)", 3, INT, athena=("integer", "3")),
    Case("nulls", "SELECT NULL AS v", None, pa.null(), athena=("unknown", None)),
    Case(
        "nulls",
        "SELECT sum(x) AS v FROM UNNEST(ARRAY[9223372036854775807, 1]) AS t(x)",
        Raises("overflow|out of bounds"),
    ),
]

# functions/datetime: date_trunc / date_add / + INTERVAL on a date return a date (week starts on
# Monday); date_diff counts whole units; hour() and from_unixtime() use the session zone, UTC on
# Athena; day_of_week is ISO (Monday 1 .. Sunday 7); date_format / date_parse use MySQL
# specifiers (%i minutes); a TIMESTAMP literal with a zone is a timestamp with time zone;
# AT TIME ZONE keeps the instant.
TIME = [
    Case(
        "time",
        "SELECT date_trunc('month', DATE '2024-03-15') AS v",
        dt.date(2024, 3, 1),
        DATE,
        athena=("date", "2024-03-01"),
    ),
    Case(
        "time",
        "SELECT date_trunc('week', DATE '2024-03-15') AS v",
        dt.date(2024, 3, 11),
        DATE,
        athena=("date", "2024-03-11"),
    ),
    Case(
        "time",
        "SELECT date_add('day', 1, DATE '2024-03-15') AS v",
        dt.date(2024, 3, 16),
        DATE,
        athena=("date", "2024-03-16"),
    ),
    Case(
        "time",
        "SELECT date_add('month', 1, DATE '2024-01-31') AS v",
        dt.date(2024, 2, 29),
        DATE,
        athena=("date", "2024-02-29"),
    ),
    Case(
        "time",
        "SELECT DATE '2024-03-15' + INTERVAL '1' DAY AS v",
        dt.date(2024, 3, 16),
        DATE,
        athena=("date", "2024-03-16"),
    ),
    Case(
        "time", "SELECT date_diff('day', DATE '2024-02-01', DATE '2024-03-01') AS v", 29, INT, athena=("bigint", "29")
    ),
    Case("time", "SELECT hour(TIMESTAMP '2024-01-01 23:30:00') AS v", 23, INT, athena=("bigint", "23")),
    Case("time", "SELECT hour(from_unixtime(1704151800)) AS v", 23, INT, athena=("bigint", "23")),
    Case(
        "time",
        "SELECT from_unixtime(1704151800) AS v",
        dt.datetime(2024, 1, 1, 23, 30, tzinfo=UTC),
        TIMESTAMPTZ,
        athena=("timestamp with time zone", "2024-01-01 23:30:00.000 UTC"),
    ),
    Case(
        "time",
        "SELECT CAST(from_unixtime(1704159000) AS date) AS v",
        dt.date(2024, 1, 2),
        DATE,
        athena=("date", "2024-01-02"),
    ),
    Case("time", "SELECT day_of_week(DATE '2024-03-17') AS v", 7, INT, athena=("bigint", "7")),
    Case("time", "SELECT year(DATE '2024-03-15') AS v", 2024, INT, athena=("bigint", "2024")),
    Case("time", "SELECT week(DATE '2024-03-15') AS v", 11, INT, athena=("bigint", "11")),
    Case(
        "time",
        "SELECT date_format(TIMESTAMP '2024-03-05 10:07:00', '%Y-%m-%d %H:%i') AS v",
        "2024-03-05 10:07",
        STRING,
        athena=("varchar", "2024-03-05 10:07"),
    ),
    Case(
        "time",
        "SELECT date_format(TIMESTAMP '2024-03-05 10:07:00', '%W') AS v",
        "Tuesday",
        STRING,
        athena=("varchar", "Tuesday"),
    ),
    Case(
        "time",
        "SELECT date_parse('2024-03-05 10:07', '%Y-%m-%d %H:%i') AS v",
        dt.datetime(2024, 3, 5, 10, 7),
        TIMESTAMP,
        athena=("timestamp", "2024-03-05 10:07:00.000"),
    ),
    Case(
        "time",
        "SELECT TIMESTAMP '2024-01-01 12:00:00 America/New_York' AS v",
        dt.datetime(2024, 1, 1, 17, tzinfo=UTC),
        TIMESTAMPTZ,
        athena=("timestamp with time zone", "2024-01-01 12:00:00.000 America/New_York"),
    ),
    Case(
        "time",
        "SELECT hour(TIMESTAMP '2024-01-01 12:00:00 UTC' AT TIME ZONE 'Asia/Tokyo') AS v",
        21,
        INT,
        athena=("bigint", "21"),
    ),
    Case(
        "time",
        "SELECT from_iso8601_timestamp('2024-01-01T12:00:00+02:00') AS v",
        dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        TIMESTAMPTZ,
        athena=("timestamp with time zone", "2024-01-01 12:00:00.000 +02:00"),
    ),
    Case(
        "time",
        "SELECT last_day_of_month(DATE '2024-02-10') AS v",
        dt.date(2024, 2, 29),
        DATE,
        athena=("date", "2024-02-29"),
    ),
    Case(
        "time",
        "SELECT CAST(TIMESTAMP '2024-01-01 23:30:00' AS date) AS v",
        dt.date(2024, 1, 1),
        DATE,
        athena=("date", "2024-01-01"),
    ),
    Case("time", "SELECT current_timezone() AS v", "UTC", STRING, athena=("varchar", "UTC")),
    Case("time", "SELECT current_date AS v", TODAY, DATE, athena=("date", TODAY.isoformat())),
    Case(
        "time",
        "SELECT to_unixtime(TIMESTAMP '2024-01-01 00:00:00') AS v",
        1704067200.0,
        FLOAT,
        athena=("double", "1.7040672E9"),
    ),
]

# functions/array: subscripts are 1-based and raise out of bounds, element_at returns NULL
# (negative counts from the end); functions/map: a missing key raises for [], element_at returns
# NULL; language/types: ROW values, UNNEST WITH ORDINALITY is 1-based; functions/lambda.
ARRAYS = [
    Case("arrays", "SELECT ARRAY[1, 2, 3] AS v", [1, 2, 3], ARRAY(INT), athena=("array(integer)", "[1, 2, 3]")),
    Case("arrays", "SELECT cardinality(ARRAY[1, 2, 3]) AS v", 3, INT, athena=("bigint", "3")),
    Case("arrays", "SELECT ARRAY[1, 2, 3][1] AS v", 1, INT, athena=("integer", "1")),
    Case("arrays", "SELECT ARRAY[1, 2, 3][5] AS v", Raises("subscript")),
    Case("arrays", "SELECT ARRAY[10, 20, 30][x] AS v FROM UNNEST(ARRAY[2]) AS t(x)", 20, INT, athena=("integer", "20")),
    Case("arrays", "SELECT ARRAY[10, 20, 30][x] AS v FROM UNNEST(ARRAY[0]) AS t(x)", Raises("start at 1")),
    Case("arrays", "SELECT element_at(ARRAY[1, 2, 3], 5) AS v", None, INT, athena=("integer", None)),
    Case("arrays", "SELECT element_at(ARRAY[1, 2, 3], -1) AS v", 3, INT, athena=("integer", "3")),
    Case("arrays", "SELECT contains(ARRAY[1, 2], 2) AS v", True, BOOL, athena=("boolean", "true")),
    Case("arrays", "SELECT array_join(ARRAY['a', NULL, 'b'], ',') AS v", "a,b", STRING, athena=("varchar", "a,b")),
    Case(
        "arrays",
        "SELECT array_sort(ARRAY[3, 1, 2]) AS v",
        [1, 2, 3],
        ARRAY(INT),
        athena=("array(integer)", "[1, 2, 3]"),
    ),
    Case(
        "arrays",
        "SELECT concat(ARRAY[1], ARRAY[2, 3]) AS v",
        [1, 2, 3],
        ARRAY(INT),
        athena=("array(integer)", "[1, 2, 3]"),
    ),
    Case("arrays", "SELECT sequence(1, 5, 2) AS v", [1, 3, 5], ARRAY(INT), athena=("array(bigint)", "[1, 3, 5]")),
    Case(
        "arrays",
        "SELECT transform(ARRAY[1, 2], x -> x * 2) AS v",
        [2, 4],
        ARRAY(INT),
        athena=("array(integer)", "[2, 4]"),
    ),
    Case(
        "arrays",
        "SELECT filter(ARRAY[1, 2, 3], x -> x > 1) AS v",
        [2, 3],
        ARRAY(INT),
        athena=("array(integer)", "[2, 3]"),
    ),
    Case(
        "arrays",
        "SELECT map(ARRAY['a', 'b'], ARRAY[1, 2]) AS v",
        [("a", 1), ("b", 2)],
        pa.map_(STRING, INT),
        athena=("map(varchar, integer)", "{a=1, b=2}"),
    ),
    Case("arrays", "SELECT element_at(map(ARRAY['a'], ARRAY[1]), 'z') AS v", None, INT, athena=("integer", None)),
    Case("arrays", "SELECT map(ARRAY['a'], ARRAY[1])['z'] AS v", Raises("key not present")),
    Case(
        "arrays",
        "SELECT CAST(ROW(1, 'x') AS ROW(a integer, b varchar)) AS v",
        {"a": 1, "b": "x"},
        pa.struct([("a", INT), ("b", STRING)]),
        athena=("row(a integer, b varchar)", "{a=1, b=x}"),
    ),
    Case(
        "arrays",
        "SELECT x, n FROM UNNEST(ARRAY['a', 'b']) WITH ORDINALITY AS t(x, n) ORDER BY n",
        Rows([{"x": "a", "n": 1}, {"x": "b", "n": 2}]),
        athena=["varchar", "bigint"],
    ),
    Case(
        "arrays",
        "SELECT x AS v FROM UNNEST(ARRAY[3, 1, 2]) AS t(x) ORDER BY x",
        Rows([{"v": 1}, {"v": 2}, {"v": 3}]),
        athena=["integer"],
    ),
]

# querying-with-prepared-statements: execution parameters are SQL literals bound in order.
PARAMETERS = [
    Case("parameters", "SELECT :n + 1 AS v", 42, INT, {"n": 41}, athena=("integer", "42")),
    Case("parameters", "SELECT :n / 2 AS v", 20, INT, {"n": 41}, athena=("integer", "20")),
    Case("parameters", "SELECT :f / 2 AS v", 1.5, FLOAT, {"f": 3.0}, athena=("double", "1.5")),
    Case("parameters", "SELECT :s AS v", "it's", STRING, {"s": "it's"}, athena=("varchar", "it's")),
    Case(
        "parameters",
        "SELECT :d AS v",
        dt.date(2024, 3, 5),
        DATE,
        {"d": dt.date(2024, 3, 5)},
        athena=("date", "2024-03-05"),
    ),
    Case(
        "parameters",
        "SELECT date_add('day', 1, :d) AS v",
        dt.date(2024, 3, 6),
        DATE,
        {"d": dt.date(2024, 3, 5)},
        athena=("date", "2024-03-06"),
    ),
    Case(
        "parameters",
        "SELECT :at AS v",
        dt.datetime(2024, 1, 1, 12),
        TIMESTAMP,
        {"at": dt.datetime(2024, 1, 1, 12)},
        athena=("timestamp", "2024-01-01 12:00:00.000"),
    ),
    Case(
        "parameters",
        "SELECT :at AS v",
        dt.datetime(2024, 1, 1, 10, tzinfo=UTC),
        TIMESTAMPTZ,
        {"at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        athena=("timestamp with time zone", "2024-01-01 10:00:00.000 UTC"),
    ),
    Case("parameters", "SELECT :flag AND true AS v", True, BOOL, {"flag": True}, athena=("boolean", "true")),
    Case(
        "parameters",
        "SELECT :p AS v",
        decimal.Decimal("1.50"),
        DECIMAL(2),
        {"p": decimal.Decimal("1.50")},
        athena=("decimal(3,2)", "1.50"),
    ),
    Case("parameters", "SELECT :n / 0 AS v", Raises("division by zero"), None, {"n": 1}),
]

# functions/window (row_number; rank: ties share a rank and leave a gap; lag: NULL before the
# first row; an aggregate over an ordered window is a running total); sql/select (WITH, GROUP BY,
# UNION ALL).
QUERIES = [
    Case(
        "queries",
        "SELECT x, row_number() OVER (ORDER BY x) AS r FROM UNNEST(ARRAY[30, 10, 20]) AS t(x) ORDER BY x",
        Rows([{"x": 10, "r": 1}, {"x": 20, "r": 2}, {"x": 30, "r": 3}]),
        athena=["integer", "bigint"],
    ),
    Case(
        "queries",
        "SELECT x, rank() OVER (ORDER BY x) AS r FROM UNNEST(ARRAY[1, 1, 2]) AS t(x) ORDER BY x",
        Rows([{"x": 1, "r": 1}, {"x": 1, "r": 1}, {"x": 2, "r": 3}]),
        athena=["integer", "bigint"],
    ),
    Case(
        "queries",
        "SELECT x, lag(x) OVER (ORDER BY x) AS p FROM UNNEST(ARRAY[1, 2, 3]) AS t(x) ORDER BY x",
        Rows([{"x": 1, "p": None}, {"x": 2, "p": 1}, {"x": 3, "p": 2}]),
        athena=["integer", "integer"],
    ),
    Case(
        "queries",
        "SELECT x, lead(x) OVER (ORDER BY x) AS n FROM UNNEST(ARRAY[1, 2, 3]) AS t(x) ORDER BY x",
        Rows([{"x": 1, "n": 2}, {"x": 2, "n": 3}, {"x": 3, "n": None}]),
        athena=["integer", "integer"],
    ),
    Case(
        "queries",
        "SELECT x, dense_rank() OVER (ORDER BY x) AS r FROM UNNEST(ARRAY[1, 1, 2]) AS t(x) ORDER BY x",
        Rows([{"x": 1, "r": 1}, {"x": 1, "r": 1}, {"x": 2, "r": 2}]),
        athena=["integer", "bigint"],
    ),
    Case(
        "queries",
        "SELECT x, sum(x) OVER (ORDER BY x) AS s FROM UNNEST(ARRAY[1, 2, 3]) AS t(x) ORDER BY x",
        Rows([{"x": 1, "s": 1}, {"x": 2, "s": 3}, {"x": 3, "s": 6}]),
        athena=["integer", "bigint"],
    ),
    Case(
        "queries",
        "WITH t AS (SELECT 1 AS k, 10 AS v UNION ALL SELECT 1, 20 UNION ALL SELECT 2, 5) "
        "SELECT k, sum(v) AS s, avg(v) AS a FROM t GROUP BY k ORDER BY k",
        Rows([{"k": 1, "s": 30, "a": 15.0}, {"k": 2, "s": 5, "a": 5.0}]),
        athena=["integer", "bigint", "double"],
    ),
    Case(
        "queries",
        "WITH t AS (SELECT 7 AS n UNION ALL SELECT -7) SELECT n, n / 2 AS half FROM t ORDER BY n",
        Rows([{"n": -7, "half": -3}, {"n": 7, "half": 3}]),
        athena=["integer", "integer"],
    ),
]

CASES = ARITHMETIC + STRINGS + NULLS + TIME + ARRAYS + PARAMETERS + QUERIES
