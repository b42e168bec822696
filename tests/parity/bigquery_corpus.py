"""BigQuery queries with the answers GoogleSQL's reference documents (section named per group).

References are to https://cloud.google.com/bigquery/docs/reference/standard-sql/ pages:
``operators`` (arithmetic, logical, array subscript), ``mathematical_functions``,
``conversion_rules`` / ``conversion_functions``, ``string_functions``, ``conditional_expressions``,
``aggregate_functions``, ``date_functions``, ``datetime_functions``, ``timestamp_functions``,
``format-elements``, ``array_functions``, ``data-types`` (array and struct types), and
https://cloud.google.com/bigquery/docs/parameterized-queries for parameters.
"""

from __future__ import annotations

import datetime as dt
import decimal

import pyarrow as pa

from tests.parity.corpus import UTC, Case, Deviation, Raises, Rows

INT64, FLOAT64, STRING, BOOL = pa.int64(), pa.float64(), pa.string(), pa.bool_()
DATE, TIMESTAMP, DATETIME = pa.date32(), pa.timestamp("us", tz="UTC"), pa.timestamp("us")
NUMERIC = pa.decimal128(38, 9)


def ARRAY(kind: pa.DataType) -> pa.DataType:
    return pa.list_(kind)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


# operators#arithmetic_operators: "/" returns FLOAT64 and raises on division by zero; integer
# overflow raises. mathematical_functions: DIV rounds toward zero, MOD takes the sign of X, both
# raise on a zero divisor; SQRT of a negative and LN of zero raise; SAFE_DIVIDE returns NULL;
# ROUND rounds halfway cases away from zero. conversion_rules: FLOAT64 to INT64 rounds halfway
# away from zero; a string that is not a number raises, SAFE_CAST returns NULL.
ARITHMETIC = [
    Case("arithmetic", "SELECT 7 / 2 AS v", 3.5, FLOAT64),
    Case("arithmetic", "SELECT 6 / 3 AS v", 2.0, FLOAT64),
    Case("arithmetic", "SELECT -7 / 2 AS v", -3.5, FLOAT64),
    Case("arithmetic", "SELECT 1 / 0 AS v", Raises("division by zero")),
    Case("arithmetic", "SELECT DIV(7, 2) AS v", 3, INT64),
    Case("arithmetic", "SELECT DIV(-7, 2) AS v", -3, INT64),
    Case("arithmetic", "SELECT DIV(1, 0) AS v", Raises("division by zero")),
    Case("arithmetic", "SELECT MOD(-7, 2) AS v", -1, INT64),
    Case("arithmetic", "SELECT MOD(7, 0) AS v", Raises("division by zero")),
    Case("arithmetic", "SELECT SAFE_DIVIDE(1, 0) AS v", None, FLOAT64),
    Case("arithmetic", "SELECT SAFE_DIVIDE(7, 2) AS v", 3.5, FLOAT64),
    Case("arithmetic", "SELECT IEEE_DIVIDE(1, 0) AS v", float("inf"), FLOAT64),
    Case("arithmetic", "SELECT 9223372036854775807 + 1 AS v", Raises("overflow")),
    Case(
        "arithmetic",
        "SELECT 2147483647 + 1 AS v",
        2147483648,
        INT64,
        emulator=Deviation(
            "the emulator types the literals INT32 and overflows; operators#arithmetic_operators: integer literals are INT64"
        ),
    ),
    Case(
        "arithmetic",
        "SELECT SQRT(-1) AS v",
        Raises("negative"),
        emulator=Deviation("the emulator answers NaN; mathematical_functions#sqrt: a negative X is an error"),
    ),
    Case("arithmetic", "SELECT SQRT(16) AS v", 4.0, FLOAT64),
    Case(
        "arithmetic",
        "SELECT LN(0) AS v",
        Raises("cannot be zero"),
        emulator=Deviation("the emulator answers -inf; mathematical_functions#ln: X <= 0 is an error"),
    ),
    Case("arithmetic", "SELECT ROUND(2.5) AS v", 3.0, FLOAT64),
    Case("arithmetic", "SELECT ROUND(-2.5) AS v", -3.0, FLOAT64),
    Case(
        "arithmetic",
        "SELECT CAST(2.5 AS INT64) AS v",
        3,
        INT64,
        emulator=Deviation(
            "the emulator rounds half to even (2); conversion_rules: halfway cases round away from zero"
        ),
    ),
    Case(
        "arithmetic",
        "SELECT CAST(-2.5 AS INT64) AS v",
        -3,
        INT64,
        emulator=Deviation(
            "the emulator rounds half to even (-2); conversion_rules: halfway cases round away from zero"
        ),
    ),
    Case("arithmetic", "SELECT CAST('abc' AS INT64) AS v", Raises("")),
    Case("arithmetic", "SELECT SAFE_CAST('abc' AS INT64) AS v", None, INT64),
    Case("arithmetic", "SELECT POW(2, 10) AS v", 1024.0, FLOAT64),
    Case("arithmetic", "SELECT ABS(-3) AS v", 3, INT64),
    Case("arithmetic", "SELECT CAST(1.25 AS NUMERIC) AS v", decimal.Decimal("1.25"), NUMERIC),
    Case("arithmetic", "SELECT CAST(7 AS FLOAT64) / 2 AS v", 3.5, FLOAT64),
    Case(
        "arithmetic",
        "SELECT SAFE.SQRT(-1) AS v",
        None,
        FLOAT64,
        emulator=Deviation("the emulator answers NaN; functions-reference#safe_prefix: an error becomes NULL"),
    ),
]

# string_functions: CONCAT returns NULL if any input is NULL and takes STRING (or BYTES) only;
# LENGTH counts characters; SUBSTR with a negative position counts from the end, position 0 (or
# before the start) is 1, a negative length is an error; STRPOS is 1-based; SPLIT returns
# ARRAY<STRING>. conversion_rules: a STRING cast to INT64 must be an integer literal, to BOOL
# "true" or "false" (any case); SAFE_CAST returns NULL instead of an error.
STRINGS = [
    Case("strings", "SELECT CONCAT('a', NULL) AS v", None, STRING),
    Case("strings", "SELECT CONCAT('a', 'b', 'c') AS v", "abc", STRING),
    Case("strings", "SELECT 'a' || 'b' AS v", "ab", STRING),
    Case("strings", "SELECT LENGTH('héllo') AS v", 5, INT64),
    Case("strings", "SELECT SUBSTR('hello', 2, 3) AS v", "ell", STRING),
    Case("strings", "SELECT SUBSTR('hello', -3) AS v", "llo", STRING),
    Case(
        "strings",
        "SELECT SUBSTR('hello', 0, 2) AS v",
        "he",
        STRING,
        emulator=Deviation("the emulator answers 'h'; string_functions#substr: position 0 is read as 1"),
    ),
    Case(
        "strings",
        "SELECT SUBSTR('hello', -10, 2) AS v",
        "he",
        STRING,
        emulator=Deviation(
            "the emulator answers ''; string_functions#substr: a position before the start is read as 1"
        ),
    ),
    Case(
        "strings",
        "SELECT SUBSTR('hello', 2, -1) AS v",
        Raises("cannot be negative"),
        emulator=Deviation("the emulator answers 'h'; string_functions#substr: a negative length is an error"),
    ),
    Case(
        "strings",
        "SELECT CAST('1.5' AS INT64) AS v",
        Raises("int64"),
        emulator=Deviation(
            "the emulator answers 2; conversion_rules: a STRING cast to INT64 must be an integer literal"
        ),
    ),
    Case(
        "strings",
        "SELECT SAFE_CAST('1.5' AS INT64) AS v",
        None,
        INT64,
        emulator=Deviation("the emulator answers 2; conversion_functions#safe_casting: NULL where CAST would fail"),
    ),
    Case("strings", "SELECT CAST('TRUE' AS BOOL) AS v", True, BOOL),
    Case(
        "strings",
        "SELECT CAST('yes' AS BOOL) AS v",
        Raises("bool"),
        emulator=Deviation("the emulator answers TRUE; conversion_rules: only 'true' and 'false' cast to BOOL"),
    ),
    Case(
        "strings",
        "SELECT CONCAT(1, 'a') AS v",
        Raises("signature"),
        emulator=Deviation("the emulator answers '1a'; string_functions#concat: STRING or BYTES arguments only"),
    ),
    Case("strings", "SELECT UPPER('abc') AS v", "ABC", STRING),
    Case("strings", "SELECT STRPOS('hello', 'l') AS v", 3, INT64),
    Case("strings", "SELECT SPLIT('a,b,c', ',') AS v", ["a", "b", "c"], ARRAY(STRING)),
    Case("strings", "SELECT TRIM('  x  ') AS v", "x", STRING),
    Case("strings", "SELECT LPAD('7', 3, '0') AS v", "007", STRING),
    Case("strings", "SELECT REGEXP_CONTAINS('abc', r'b') AS v", True, BOOL),
    Case("strings", "SELECT STARTS_WITH('abc', 'a') AS v", True, BOOL),
    Case("strings", r"SELECT REGEXP_CONTAINS('a1', r'\d') AS v", True, BOOL),
    Case("strings", "SELECT FORMAT('%d-%s', 1, 'a') AS v", "1-a", STRING),
    Case("strings", "SELECT CAST(1.5 AS STRING) AS v", "1.5", STRING),
    Case("strings", "SELECT CAST(42 AS STRING) AS v", "42", STRING),
]

# conditional_expressions (IFNULL, COALESCE, NULLIF, IF); operators#logical_operators (three-valued
# logic: NULL AND FALSE is FALSE, NULL OR TRUE is TRUE); aggregate_functions (COUNT(x) skips NULL,
# SUM/MAX of no rows are NULL, COUNT(*) of no rows is 0, AVG returns FLOAT64, SUM raises on
# overflow); data-types#nullable_data_types (an untyped NULL is INT64).
NULLS = [
    Case("nulls", "SELECT IFNULL(NULL, 1) AS v", 1, INT64),
    Case("nulls", "SELECT COALESCE(NULL, NULL, 3) AS v", 3, INT64),
    Case("nulls", "SELECT NULLIF(1, 1) AS v", None, INT64),
    Case("nulls", "SELECT NULL = NULL AS v", None, BOOL),
    Case("nulls", "SELECT NULL IS NULL AS v", True, BOOL),
    Case("nulls", "SELECT IF(NULL, 1, 2) AS v", 2, INT64),
    Case("nulls", "SELECT NULL AND FALSE AS v", False, BOOL),
    Case("nulls", "SELECT NULL OR TRUE AS v", True, BOOL),
    Case("nulls", "SELECT COUNT(x) AS v FROM UNNEST([1, NULL, 3]) AS x", 2, INT64),
    Case("nulls", "SELECT SUM(x) AS v FROM UNNEST(CAST([] AS ARRAY<INT64>)) AS x", None, INT64),
    Case("nulls", "SELECT COUNT(*) AS v FROM UNNEST(CAST([] AS ARRAY<INT64>)) AS x", 0, INT64),
    Case("nulls", "SELECT MAX(x) AS v FROM UNNEST([1, NULL, 3]) AS x", 3, INT64),
    Case("nulls", "SELECT AVG(x) AS v FROM UNNEST([1, 2]) AS x", 1.5, FLOAT64),
    Case(
        "nulls",
        "SELECT AVG(x) AS v FROM UNNEST([CAST(1 AS NUMERIC), CAST(2 AS NUMERIC)]) AS x",
        decimal.Decimal("1.5"),
        NUMERIC,
        emulator=Deviation("the emulator answers FLOAT64 1.5; aggregate_functions#avg: AVG of NUMERIC is NUMERIC"),
    ),
    Case(
        "nulls",
        "SELECT NULL AS v",
        None,
        INT64,
        emulator=Deviation("the emulator types it STRING; data-types#nullable_data_types: an untyped NULL is INT64"),
    ),
    Case("nulls", "SELECT IF(TRUE, NULL, 'x') AS v", None, STRING),
    Case(
        "nulls",
        "SELECT SUM(x) AS v FROM UNNEST([9223372036854775807, 1]) AS x",
        Raises("overflow|out of bounds"),
        emulator=Deviation(
            "the emulator returns 9223372036854775808, past INT64, which the client can not read; "
            "aggregate_functions#sum: an overflow is an error"
        ),
    ),
]

# date_functions: DATE_TRUNC/DATE_ADD/DATE_SUB on a DATE return a DATE, WEEK starts on Sunday,
# adding a month clamps to the month's last day, DATE_DIFF counts part boundaries; DATE(ts) and
# EXTRACT from a TIMESTAMP are in UTC unless a zone is given. timestamp_functions:
# PARSE_TIMESTAMP / TIMESTAMP(string, zone) read the wall clock in the zone (default UTC),
# FORMAT_TIMESTAMP and TIMESTAMP_TRUNC honour the zone argument. datetime_functions: DATETIME(ts,
# zone). conversion_rules: a TIMESTAMP cast to STRING is written in UTC with "+00".
# format-elements: %e is the day padded with a space.
TIME = [
    Case("time", "SELECT DATE_TRUNC(DATE '2024-03-15', MONTH) AS v", dt.date(2024, 3, 1), DATE),
    Case("time", "SELECT DATE_TRUNC(DATE '2024-03-15', WEEK) AS v", dt.date(2024, 3, 10), DATE),
    Case(
        "time",
        "SELECT DATE_TRUNC(DATE '2024-03-15', ISOWEEK) AS v",
        dt.date(2024, 3, 11),
        DATE,
        emulator=Deviation("the emulator fails on ISOWEEK; date_functions#date_trunc: ISOWEEK truncates to the Monday"),
    ),
    Case("time", "SELECT DATE_ADD(DATE '2024-03-15', INTERVAL 1 DAY) AS v", dt.date(2024, 3, 16), DATE),
    Case("time", "SELECT DATE_ADD(DATE '2024-01-31', INTERVAL 1 MONTH) AS v", dt.date(2024, 2, 29), DATE),
    Case("time", "SELECT DATE_SUB(DATE '2024-03-01', INTERVAL 1 DAY) AS v", dt.date(2024, 2, 29), DATE),
    Case("time", "SELECT DATE_DIFF(DATE '2024-03-01', DATE '2024-02-01', DAY) AS v", 29, INT64),
    Case("time", "SELECT DATE_DIFF(DATE '2024-01-01', DATE '2023-12-31', YEAR) AS v", 1, INT64),
    Case("time", "SELECT DATE(TIMESTAMP '2024-01-01 23:30:00+00') AS v", dt.date(2024, 1, 1), DATE),
    Case("time", "SELECT DATE(TIMESTAMP '2024-01-02 03:00:00+00') AS v", dt.date(2024, 1, 2), DATE),
    Case(
        "time",
        "SELECT DATE(TIMESTAMP '2024-01-02 03:00:00+00', 'America/Los_Angeles') AS v",
        dt.date(2024, 1, 1),
        DATE,
    ),
    Case("time", "SELECT EXTRACT(HOUR FROM TIMESTAMP '2024-01-01 23:30:00+00') AS v", 23, INT64),
    Case(
        "time",
        "SELECT EXTRACT(HOUR FROM TIMESTAMP '2024-01-01 23:30:00+00' AT TIME ZONE 'Asia/Tokyo') AS v",
        8,
        INT64,
    ),
    Case("time", "SELECT EXTRACT(DAYOFWEEK FROM DATE '2024-03-17') AS v", 1, INT64),
    Case("time", "SELECT EXTRACT(WEEK FROM DATE '2024-03-15') AS v", 10, INT64),
    Case("time", "SELECT TIMESTAMP_TRUNC(TIMESTAMP '2024-03-15 10:20:30+00', DAY) AS v", ts(2024, 3, 15), TIMESTAMP),
    Case(
        "time",
        "SELECT TIMESTAMP_TRUNC(TIMESTAMP '2024-03-15 02:00:00+00', DAY, 'America/New_York') AS v",
        ts(2024, 3, 14, 4),
        TIMESTAMP,
    ),
    Case(
        "time",
        "SELECT TIMESTAMP_ADD(TIMESTAMP '2024-01-01 00:00:00+00', INTERVAL 90 MINUTE) AS v",
        ts(2024, 1, 1, 1, 30),
        TIMESTAMP,
    ),
    Case(
        "time",
        "SELECT TIMESTAMP_DIFF(TIMESTAMP '2024-01-02 00:00:00+00', TIMESTAMP '2024-01-01 12:00:00+00', HOUR) AS v",
        12,
        INT64,
    ),
    Case(
        "time",
        "SELECT PARSE_TIMESTAMP('%Y-%m-%d %H:%M:%S', '2024-01-01 12:00:00', 'America/New_York') AS v",
        ts(2024, 1, 1, 17),
        TIMESTAMP,
        emulator=Deviation(
            "the emulator ignores the zone (12:00 UTC); timestamp_functions#parse_timestamp: the string is read in the zone"
        ),
    ),
    Case(
        "time",
        "SELECT PARSE_TIMESTAMP('%Y-%m-%d %H:%M:%S', '2024-01-01 12:00:00') AS v",
        ts(2024, 1, 1, 12),
        TIMESTAMP,
    ),
    Case("time", "SELECT PARSE_DATE('%Y%m%d', '20240315') AS v", dt.date(2024, 3, 15), DATE),
    Case("time", "SELECT FORMAT_DATE('%Y/%m/%d', DATE '2024-03-05') AS v", "2024/03/05", STRING),
    Case(
        "time",
        "SELECT FORMAT_TIMESTAMP('%Y-%m-%d %H:%M', TIMESTAMP '2024-03-05 10:00:00+00', 'Asia/Tokyo') AS v",
        "2024-03-05 19:00",
        STRING,
    ),
    Case(
        "time",
        "SELECT FORMAT_DATE('%b %e', DATE '2024-03-05') AS v",
        "Mar  5",
        STRING,
        emulator=Deviation("the emulator writes 'Mar 5'; format-elements: %e pads the day with a space"),
    ),
    Case(
        "time",
        "SELECT DATETIME(TIMESTAMP '2024-01-01 23:30:00+00', 'America/Los_Angeles') AS v",
        dt.datetime(2024, 1, 1, 15, 30),
        DATETIME,
    ),
    Case(
        "time",
        "SELECT CAST(TIMESTAMP '2024-01-01 23:30:00+00' AS STRING) AS v",
        "2024-01-01 23:30:00+00",
        STRING,
    ),
    Case("time", "SELECT LAST_DAY(DATE '2024-02-10') AS v", dt.date(2024, 2, 29), DATE),
    Case("time", "SELECT UNIX_SECONDS(TIMESTAMP '2024-01-01 00:00:00+00') AS v", 1704067200, INT64),
    Case("time", "SELECT TIMESTAMP_SECONDS(1704067200) AS v", ts(2024, 1, 1), TIMESTAMP),
    Case("time", "SELECT TIMESTAMP('2024-01-01 12:00:00', 'America/New_York') AS v", ts(2024, 1, 1, 17), TIMESTAMP),
    Case(
        "time",
        "SELECT DATETIME_TRUNC(DATETIME '2024-03-15 10:20:30', HOUR) AS v",
        dt.datetime(2024, 3, 15, 10),
        DATETIME,
    ),
    Case("time", "SELECT CAST(DATE '2024-03-05' AS STRING) AS v", "2024-03-05", STRING),
    # date_functions#current_date: "the current date in the default time zone, UTC"
    Case("time", "SELECT CURRENT_DATE() AS v", dt.datetime.now(dt.UTC).date(), DATE),
    Case("time", "SELECT DATE(CURRENT_TIMESTAMP()) = CURRENT_DATE() AS v", True, BOOL),
]

# array_functions, data-types#array_type (a NULL ARRAY is returned as an empty array; an array in
# a result can not hold NULL; an array of arrays can not be built), data-types#struct_type, operators#array_subscript_operator (OFFSET
# is 0-based, ORDINAL 1-based, both raise out of range, SAFE_ forms return NULL),
# aggregate_functions#array_agg (raises on NULL unless IGNORE NULLS), UNNEST WITH OFFSET (0-based).
ARRAYS = [
    Case("arrays", "SELECT [1, 2, 3] AS v", [1, 2, 3], ARRAY(INT64)),
    Case(
        "arrays",
        "SELECT [[1], [2]] AS v",
        Raises("array"),
        emulator=Deviation(
            "the emulator returns [[1], [2]], which the client can not read; data-types#array_type: "
            "an ARRAY of ARRAYs is not supported"
        ),
    ),
    Case("arrays", "SELECT ARRAY_LENGTH([1, 2, 3]) AS v", 3, INT64),
    Case("arrays", "SELECT [1, 2, 3][OFFSET(1)] AS v", 2, INT64),
    Case("arrays", "SELECT [1, 2, 3][ORDINAL(1)] AS v", 1, INT64),
    Case(
        "arrays",
        "SELECT [1, 2, 3][OFFSET(5)] AS v",
        Raises("out of bounds"),
        emulator=Deviation(
            "the emulator answers NULL; operators#array_subscript_operator: OFFSET out of range is an error"
        ),
    ),
    Case("arrays", "SELECT [1, 2, 3][SAFE_OFFSET(5)] AS v", None, INT64),
    Case(
        "arrays",
        "SELECT ARRAY_AGG(x) AS v FROM UNNEST([1, NULL]) AS x",
        Raises("null element"),
        emulator=Deviation(
            "the emulator returns [1, NULL], which the client can not even read; aggregate_functions#array_agg: a NULL element is an error"
        ),
    ),
    Case(
        "arrays",
        "SELECT ARRAY_AGG(x IGNORE NULLS ORDER BY x) AS v FROM UNNEST([3, NULL, 1]) AS x",
        [1, 3],
        ARRAY(INT64),
    ),
    Case("arrays", "SELECT ARRAY_AGG(x ORDER BY x) AS v FROM UNNEST([3, 1, 2]) AS x", [1, 2, 3], ARRAY(INT64)),
    Case(
        "arrays",
        "SELECT [1, NULL] AS v",
        Raises("null element"),
        emulator=Deviation("the emulator returns [1, NULL]; data-types#array_type: a result array can not hold NULL"),
    ),
    Case("arrays", "SELECT ARRAY_CONCAT([1], [2, 3]) AS v", [1, 2, 3], ARRAY(INT64)),
    Case("arrays", "SELECT ARRAY_TO_STRING(['a', NULL, 'b'], ',') AS v", "a,b", STRING),
    Case("arrays", "SELECT GENERATE_ARRAY(1, 5, 2) AS v", [1, 3, 5], ARRAY(INT64)),
    Case(
        "arrays",
        "SELECT GENERATE_DATE_ARRAY(DATE '2024-01-30', DATE '2024-02-01') AS v",
        [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)],
        ARRAY(DATE),
    ),
    Case(
        "arrays",
        "SELECT STRUCT(1 AS a, 'x' AS b) AS v",
        {"a": 1, "b": "x"},
        pa.struct([("a", INT64), ("b", STRING)]),
    ),
    Case("arrays", "SELECT s.a AS v FROM (SELECT STRUCT(1 AS a) AS s)", 1, INT64),
    Case("arrays", "SELECT x AS v FROM UNNEST([3, 1, 2]) AS x ORDER BY x", Rows([{"v": 1}, {"v": 2}, {"v": 3}])),
    Case(
        "arrays",
        "SELECT x, off FROM UNNEST(['a', 'b']) AS x WITH OFFSET AS off ORDER BY off",
        Rows([{"x": "a", "off": 0}, {"x": "b", "off": 1}]),
        emulator=Deviation(
            "the emulator names the offset column '(\"off\" - 1)'; operators#unnest: WITH OFFSET AS off names it off"
        ),
    ),
    Case("arrays", "SELECT ARRAY_REVERSE([1, 2, 3]) AS v", [3, 2, 1], ARRAY(INT64)),
    Case("arrays", "SELECT 2 IN UNNEST([1, 2]) AS v", True, BOOL),
    Case("arrays", "SELECT ARRAY_AGG(x) AS v FROM UNNEST(CAST([] AS ARRAY<INT64>)) AS x", [], ARRAY(INT64)),
    Case(
        "arrays",
        "SELECT ARRAY(SELECT x * 2 FROM UNNEST([1, 2]) AS x ORDER BY x) AS v",
        [2, 4],
        ARRAY(INT64),
    ),
]

# parameterized-queries: named parameters are typed values (INT64, STRING, DATE, TIMESTAMP,
# DATETIME, FLOAT64, BOOL, ARRAY<...>), never text in the SQL.
PARAMETERS = [
    Case("parameters", "SELECT @n + 1 AS v", 42, INT64, {"n": 41}),
    Case("parameters", "SELECT @s AS v", "it's", STRING, {"s": "it's"}),
    Case("parameters", "SELECT @d AS v", dt.date(2024, 3, 5), DATE, {"d": dt.date(2024, 3, 5)}),
    Case("parameters", "SELECT ARRAY_LENGTH(@arr) AS v", 3, INT64, {"arr": [1, 2, 3]}),
    Case(
        "parameters",
        "SELECT @at AS v",
        ts(2024, 1, 1, 10),
        TIMESTAMP,
        {"at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))},
    ),
    Case(
        "parameters",
        "SELECT x AS v FROM UNNEST(@arr) AS x WHERE x > @low ORDER BY x",
        Rows([{"v": 3}, {"v": 5}]),
        None,
        {"arr": [5, 1, 3], "low": 2},
    ),
    Case("parameters", "SELECT @f / 2 AS v", 1.5, FLOAT64, {"f": 3.0}),
    Case("parameters", "SELECT @flag AND TRUE AS v", True, BOOL, {"flag": True}),
    Case(
        "parameters",
        "SELECT DATE_ADD(@d, INTERVAL 1 DAY) AS v",
        dt.date(2024, 3, 6),
        DATE,
        {"d": dt.date(2024, 3, 5)},
    ),
    Case("parameters", "SELECT @at AS v", dt.datetime(2024, 1, 1, 12), DATETIME, {"at": dt.datetime(2024, 1, 1, 12)}),
    Case("parameters", "SELECT @n / 0 AS v", Raises("division by zero"), None, {"n": 1}),
    Case("parameters", "SELECT @n AS v", decimal.Decimal("1.5"), NUMERIC, {"n": decimal.Decimal("1.5")}),
]

# window-function-calls and numbering_functions (ROW_NUMBER, RANK: ties share a rank and leave a
# gap), navigation_functions (LAG: NULL before the first row), aggregate_functions over a window
# (a running total with ORDER BY); query-syntax (WITH, GROUP BY, UNION ALL).
QUERIES = [
    Case(
        "queries",
        "SELECT x, ROW_NUMBER() OVER (ORDER BY x) AS r FROM UNNEST([30, 10, 20]) AS x ORDER BY x",
        Rows([{"x": 10, "r": 1}, {"x": 20, "r": 2}, {"x": 30, "r": 3}]),
    ),
    Case(
        "queries",
        "SELECT x, RANK() OVER (ORDER BY x) AS r FROM UNNEST([1, 1, 2]) AS x ORDER BY x",
        Rows([{"x": 1, "r": 1}, {"x": 1, "r": 1}, {"x": 2, "r": 3}]),
    ),
    Case(
        "queries",
        "SELECT x, LAG(x) OVER (ORDER BY x) AS p FROM UNNEST([1, 2, 3]) AS x ORDER BY x",
        Rows([{"x": 1, "p": None}, {"x": 2, "p": 1}, {"x": 3, "p": 2}]),
    ),
    Case(
        "queries",
        "SELECT x, LEAD(x) OVER (ORDER BY x) AS n FROM UNNEST([1, 2, 3]) AS x ORDER BY x",
        Rows([{"x": 1, "n": 2}, {"x": 2, "n": 3}, {"x": 3, "n": None}]),
    ),
    Case(
        "queries",
        "SELECT x, DENSE_RANK() OVER (ORDER BY x) AS r FROM UNNEST([1, 1, 2]) AS x ORDER BY x",
        Rows([{"x": 1, "r": 1}, {"x": 1, "r": 1}, {"x": 2, "r": 2}]),
    ),
    Case(
        "queries",
        "SELECT x, SUM(x) OVER (ORDER BY x) AS s FROM UNNEST([1, 2, 3]) AS x ORDER BY x",
        Rows([{"x": 1, "s": 1}, {"x": 2, "s": 3}, {"x": 3, "s": 6}]),
    ),
    Case(
        "queries",
        "WITH t AS (SELECT 1 AS k, 10 AS v UNION ALL SELECT 1, 20 UNION ALL SELECT 2, 5) "
        "SELECT k, SUM(v) AS s, AVG(v) AS a FROM t GROUP BY k ORDER BY k",
        Rows([{"k": 1, "s": 30, "a": 15.0}, {"k": 2, "s": 5, "a": 5.0}]),
    ),
    Case(
        "queries",
        "WITH t AS (SELECT 7 AS n UNION ALL SELECT -7) SELECT n, n / 2 AS half, DIV(n, 2) AS whole FROM t ORDER BY n",
        Rows([{"n": -7, "half": -3.5, "whole": -3}, {"n": 7, "half": 3.5, "whole": 3}]),
    ),
]

CASES = ARITHMETIC + STRINGS + NULLS + TIME + ARRAYS + PARAMETERS + QUERIES

__all__ = ["CASES", "Deviation"]
