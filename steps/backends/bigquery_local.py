"""BigQuery's answers on DuckDB: the allow-list, the rewrites and the result rules.

Each rewrite exists because the plain sqlglot translation answers differently from BigQuery's
documented semantics (GoogleSQL reference, cited per rule); the parity corpus in
``tests/parity/bigquery_corpus.py`` holds the documented answer for every construct allowed here.

* ``/`` always returns FLOAT64 and raises on a zero divisor; ``DIV`` truncates and raises too
  ("Arithmetic operators", "DIV").
* ``SQRT`` of a negative and ``LN``/``LOG10`` of a non-positive number raise ("Mathematical
  functions"); DuckDB answers NaN or -inf.
* A numeric literal with a point is FLOAT64 (DuckDB reads it as DECIMAL); an integer literal is
  INT64 (DuckDB: INTEGER, which overflows at 2^31).
* ``CAST(float AS INT64)`` rounds halfway cases away from zero ("Conversion rules").
* ``DATE_TRUNC``/``DATE_ADD``/``DATE_SUB`` on a DATE return a DATE, ``DATETIME_*`` a DATETIME
  ("Date functions"); DuckDB returns TIMESTAMP.
* ``PARSE_TIMESTAMP``/``FORMAT_TIMESTAMP`` honour their time-zone argument ("Timestamp functions").
* ``arr[OFFSET(i)]``/``arr[ORDINAL(i)]`` raise out of range; ``SAFE_`` forms return NULL ("Array
  subscript operator").
* ``ARRAY_AGG`` raises on a NULL element unless ``IGNORE NULLS`` ("ARRAY_AGG"); a result array
  can not hold NULL, and a NULL array is returned as ``[]`` ("Array type").
* ``EXTRACT(DAYOFWEEK ...)`` counts 1-7 from Sunday (DuckDB 0-6).
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from steps.backends.bigquery_params import scalar_types
from steps.backends.sql_errors import SqlError
from steps.backends.sql_parity import (
    QUERY_STRUCTURE,
    SHARED_FUNCTIONS,
    Rewrite,
    Rules,
    Typer,
    call,
    cast,
    is_parameter,
    literal_format,
    refuse,
    unit_of,
)
from steps.core.errors import UserError

LABEL = "BigQuery"

MACROS = (
    "CREATE MACRO __hr_bq_div(a, b) AS CASE WHEN b = 0 THEN "
    "error('division by zero: ' || CAST(a AS VARCHAR) || ' / ' || CAST(b AS VARCHAR)) "
    "ELSE CAST(a AS DOUBLE) / b END",
    "CREATE MACRO __hr_bq_intdiv(a, b) AS CASE WHEN b = 0 THEN "
    "error('division by zero: ' || CAST(a AS VARCHAR) || ' / ' || CAST(b AS VARCHAR)) ELSE a // b END",
    "CREATE MACRO __hr_bq_sqrt(x) AS CASE WHEN x < 0 THEN "
    "error('Argument to SQRT cannot be negative: ' || CAST(x AS VARCHAR)) ELSE sqrt(x) END",
    "CREATE MACRO __hr_bq_ln(x) AS CASE WHEN x <= 0 THEN "
    "error('Argument to LN cannot be zero or negative: ' || CAST(x AS VARCHAR)) ELSE ln(x) END",
    "CREATE MACRO __hr_bq_log10(x) AS CASE WHEN x <= 0 THEN "
    "error('Argument to LOG10 cannot be zero or negative: ' || CAST(x AS VARCHAR)) ELSE log10(x) END",
    "CREATE MACRO __hr_bq_offset(arr, i) AS CASE WHEN i < 0 OR i >= len(arr) THEN "
    "error('Array index ' || CAST(i AS VARCHAR) || ' is out of bounds (overflow)') ELSE arr[i + 1] END",
    "CREATE MACRO __hr_bq_ordinal(arr, i) AS CASE WHEN i < 1 OR i > len(arr) THEN "
    "error('Array index ' || CAST(i AS VARCHAR) || ' is out of bounds (overflow)') ELSE arr[i] END",
    "CREATE MACRO __hr_bq_substr2(s, p) AS substring(s, CASE WHEN p = 0 OR p < -length(s) THEN 1 ELSE p END)",
    "CREATE MACRO __hr_bq_substr(s, p, l) AS CASE WHEN l < 0 THEN "
    "error('Third argument in SUBSTR() cannot be negative') "
    "ELSE substring(s, CASE WHEN p = 0 OR p < -length(s) THEN 1 ELSE p END, l) END",
    "CREATE MACRO __hr_bq_int(s) AS CASE WHEN s IS NULL THEN NULL WHEN regexp_full_match(s, '[+-]?[0-9]+') "
    "THEN CAST(s AS BIGINT) ELSE error('Bad int64 value: ' || s) END",
    "CREATE MACRO __hr_bq_safe_int(s) AS CASE WHEN regexp_full_match(s, '[+-]?[0-9]+') THEN TRY_CAST(s AS BIGINT) END",
    "CREATE MACRO __hr_bq_bool(s) AS CASE WHEN s IS NULL THEN NULL WHEN lower(s) = 'true' THEN true "
    "WHEN lower(s) = 'false' THEN false ELSE error('Bad bool value: ' || s) END",
    "CREATE MACRO __hr_bq_safe_offset(arr, i) AS CASE WHEN i < 0 OR i >= len(arr) THEN NULL ELSE arr[i + 1] END",
    "CREATE MACRO __hr_bq_safe_ordinal(arr, i) AS CASE WHEN i < 1 OR i > len(arr) THEN NULL ELSE arr[i] END",
)

#: strftime elements (as sqlglot writes BigQuery's into DuckDB's) whose output the corpus verified.
FORMAT_ELEMENTS = frozenset({"%Y", "%m", "%d", "%H", "%M", "%S", "%j", "%y", "%b", "%B", "%a", "%A", "%I", "%p", "%%"})
EXTRACT_PARTS = frozenset({"YEAR", "QUARTER", "MONTH", "DAY", "DAYOFYEAR", "HOUR", "MINUTE", "SECOND", "DAYOFWEEK"})
TRUNC_UNITS = frozenset({"YEAR", "QUARTER", "MONTH", "WEEK(SUNDAY)", "ISOWEEK", "DAY", "HOUR", "MINUTE", "SECOND"})
ADD_UNITS = frozenset({"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND"})
DIFF_UNITS = frozenset({"YEAR", "QUARTER", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"})


def parameter_type(name: str, value: Any) -> exp.DataType:
    """DuckDB's spelling of the type BigQuery gives a typed query parameter with this value."""
    return exp.DataType.build(_duck_type(name, value), dialect="duckdb")


def _duck_type(name: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        typed = [v for v in value if v is not None]
        if not typed:
            raise UserError(f"parameter @{name}: an empty list has no element type; pass at least one value")
        return _duck_type(name, typed[0]) + "[]"
    return scalar_types(name, value)[1]


# ---------------------------------------------------------------------------- rewrites


def _literal(node: exp.Literal, typer: Typer) -> Any:
    if node.is_string:
        return node
    text = str(node.this)
    if "." in text or "e" in text.lower():
        return cast(node.copy(), "DOUBLE")
    arithmetic = (exp.Add, exp.Sub, exp.Mul, exp.Neg, exp.Mod, exp.IntDiv, exp.Div)
    if isinstance(node.parent, arithmetic):
        return cast(node.copy(), "BIGINT")
    return node


def _numeric_operands(node: Any, typer: Typer, what: str) -> None:
    for operand in (node.this, node.expression):
        if typer.is_type(operand, "decimal"):
            raise refuse(LABEL, f"{what} of NUMERIC values", node)
        if not typer.is_type(operand, "integer", "float"):
            raise refuse(LABEL, f"{what} of operands whose types could not be inferred", node)


def _div(node: exp.Div, typer: Typer) -> Any:
    _numeric_operands(node, typer, "division")
    return call("__hr_bq_div", node.this, node.expression)


def _intdiv(node: exp.IntDiv, typer: Typer) -> Any:
    _numeric_operands(node, typer, "DIV")
    return call("__hr_bq_intdiv", node.this, node.expression)


def _checked(macro: str) -> Any:
    def rewrite(node: Any, typer: Typer) -> Any:
        return call(macro, node.this)

    return rewrite


def _log(node: exp.Log, typer: Typer) -> Any:
    if node.expression is not None:  # LOG(x, base)
        raise refuse(LABEL, "function LOG with a base", node)
    return call("__hr_bq_ln", node.this)


def _cast(node: exp.Cast, typer: Typer) -> Any:
    if is_parameter(node):
        return node
    to = node.to
    if to.this in (exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL):
        if to.this == exp.DataType.Type.BIGDECIMAL or to.expressions:
            raise refuse(LABEL, f"CAST to {to.sql(LABEL.lower())}", node)
        return cast(node.this, "DECIMAL(38, 9)")  # NUMERIC is DECIMAL(38, 9); DuckDB's default is (18, 3)
    if to.this in exp.DataType.INTEGER_TYPES and typer.is_type(node.this, "float"):
        return exp.Cast(this=call("round", node.this), to=to)
    if to.this in exp.DataType.INTEGER_TYPES and typer.is_type(node.this, "text"):
        return call("__hr_bq_safe_int" if isinstance(node, exp.TryCast) else "__hr_bq_int", node.this)
    if to.this == exp.DataType.Type.BOOLEAN and typer.is_type(node.this, "text"):
        if isinstance(node, exp.TryCast):
            raise refuse(LABEL, "SAFE_CAST of a STRING to BOOL", node)
        return call("__hr_bq_bool", node.this)
    if to.this in exp.DataType.TEXT_TYPES and typer.is_type(node.this, "float", "decimal"):
        raise refuse(LABEL, "CAST of a FLOAT64/NUMERIC to STRING", node)
    if to.this in exp.DataType.TEXT_TYPES and not typer.is_type(
        node.this, "integer", "text", "date", "timestamp", "timestamptz"
    ):
        raise refuse(LABEL, "CAST to STRING of this type", node)
    return node


def _substring(node: exp.Substring, typer: Typer) -> Any:
    length = node.args.get("length")
    if length is None:
        return call("__hr_bq_substr2", node.this, node.args["start"])
    return call("__hr_bq_substr", node.this, node.args["start"], length)


def _concat(node: Any, typer: Typer) -> Any:
    parts = node.expressions if isinstance(node, exp.Concat) else [node.this, node.expression]
    for part in parts:
        if not (isinstance(part, exp.Null) or typer.is_type(part, "text")):
            raise refuse(LABEL, "CONCAT of a value that is not a STRING", node, "BigQuery has no such signature")
    return node


def _as_type(node: Any, typer: Typer, allowed_units: frozenset[str], what: str) -> Any:
    """DATE in → DATE out, DATETIME in → DATETIME out, TIMESTAMP in → TIMESTAMP out."""
    unit = unit_of(node)
    if unit and unit not in allowed_units:
        raise refuse(LABEL, f"{what} with date part {unit}", node)
    if node.args.get("zone") is not None:
        raise refuse(LABEL, f"{what} with a time zone argument", node)
    source = node.this
    if typer.is_type(source, "date"):
        return cast(node.copy(), "DATE")
    if typer.is_type(source, "timestamp"):
        return cast(node.copy(), "TIMESTAMP")
    if typer.is_type(source, "timestamptz"):
        return cast(node.copy(), "TIMESTAMPTZ")
    raise refuse(LABEL, f"{what} of a value whose type could not be inferred", node)


def _trunc(node: Any, typer: Typer) -> Any:
    return _as_type(node, typer, TRUNC_UNITS, "DATE_TRUNC/TIMESTAMP_TRUNC")


def _timestamp_trunc(node: exp.TimestampTrunc, typer: Typer) -> Any:
    zone = node.args.get("zone")
    unit = unit_of(node)
    if zone is not None:
        if unit not in {"DAY", "MONTH", "YEAR", "QUARTER"} or not isinstance(zone, exp.Literal):
            raise refuse(LABEL, f"TIMESTAMP_TRUNC to {unit} in a time zone", node)
        return node  # sqlglot truncates in the zone (verified by the corpus)
    return _as_type(node, typer, TRUNC_UNITS, "TIMESTAMP_TRUNC")


def _add(node: Any, typer: Typer) -> Any:
    return _as_type(node, typer, ADD_UNITS, "DATE_ADD/DATE_SUB")


def _diff(node: Any, typer: Typer) -> Any:
    unit = unit_of(node)
    if unit not in DIFF_UNITS:
        raise refuse(LABEL, f"DATE_DIFF/TIMESTAMP_DIFF with date part {unit or '(none)'}", node)
    return node


def _extract(node: exp.Extract, typer: Typer) -> Any:
    part = node.this.name.upper()
    if part not in EXTRACT_PARTS:
        raise refuse(LABEL, f"EXTRACT({part} ...)", node)
    if typer.is_type(node.expression, "timestamptz") and not isinstance(node.expression, exp.AtTimeZone):
        # a TIMESTAMP's parts are read in UTC: take its UTC wall-clock time first
        node.set("expression", call("timezone", exp.Literal.string("UTC"), node.expression))
    if part == "DAYOFWEEK":  # BigQuery: 1 (Sunday) to 7; DuckDB: 0 to 6
        return exp.Paren(this=exp.Add(this=node.copy(), expression=exp.Literal.number(1)))
    return node


def _format(node: exp.TimeToStr, typer: Typer) -> Any:
    literal_format(node, LABEL, FORMAT_ELEMENTS, "FORMAT_DATE/FORMAT_TIMESTAMP")
    zone = node.args.get("zone")
    if zone is None:
        return node
    value = node.this.this if isinstance(node.this, exp.TsOrDsToTimestamp) else node.this
    local = call("timezone", zone, cast(value, "TIMESTAMPTZ"))
    return call("strftime", local, node.args["format"])


def _parse_timestamp(node: exp.StrToTime, typer: Typer) -> Any:
    literal_format(node, LABEL, FORMAT_ELEMENTS, "PARSE_TIMESTAMP")
    zone = node.args.get("zone") or exp.Literal.string("UTC")
    naive = node.copy()
    naive.set("zone", None)
    return call("timezone", zone, naive)  # wall-clock time in the zone → the instant (TIMESTAMP)


def _parse_date(node: exp.StrToDate, typer: Typer) -> Any:
    literal_format(node, LABEL, FORMAT_ELEMENTS, "PARSE_DATE")
    return node


def _bracket(node: exp.Bracket, typer: Typer) -> Any:
    if len(node.expressions) != 1 or not typer.is_type(node.this, "array"):
        raise refuse(LABEL, "subscript of a value that is not an ARRAY", node)
    offset = node.args.get("offset")
    if offset not in (0, 1):
        raise refuse(LABEL, "array subscript without OFFSET/ORDINAL", node)
    name = ("__hr_bq_safe_" if node.args.get("safe") else "__hr_bq_") + ("offset" if offset == 0 else "ordinal")
    return call(name, node.this, node.expressions[0])


def _array_agg(node: exp.ArrayAgg, typer: Typer) -> Any:
    if isinstance(node.parent, exp.IgnoreNulls):
        return node
    value = node.this
    if isinstance(value, exp.Order):
        value = value.this
    if isinstance(value, exp.Distinct):
        value = value.expressions[0]
    has_null = call("bool_or", exp.Is(this=value.copy(), expression=exp.Null()))
    fail = call("error", exp.Literal.string("Array cannot have a null element; error in writing field"))
    return exp.Case(ifs=[exp.If(this=has_null, true=fail)], default=node.copy())


def _unnest(node: exp.Unnest, typer: Typer) -> Any:
    if node.args.get("offset"):
        raise refuse(LABEL, "UNNEST ... WITH OFFSET", node, "BigQuery offsets start at 0, DuckDB's ordinality at 1")
    return node


def _dot(node: exp.Dot, typer: Typer) -> Any:
    if not isinstance(node.expression, exp.Identifier):
        raise refuse(LABEL, "this field access", node)
    return node


def _avg(node: exp.Avg, typer: Typer) -> Any:
    if not typer.is_type(node.this, "integer", "float"):
        raise refuse(LABEL, "AVG of a value that is not INT64 or FLOAT64", node, "AVG of a NUMERIC is a NUMERIC")
    return node


def _current_date(node: exp.CurrentDate, typer: Typer) -> Any:
    if node.this is not None:
        raise refuse(LABEL, "CURRENT_DATE with a time zone argument", node)
    return node  # the session zone is UTC on both sides


def _array(node: exp.Array, typer: Typer) -> Any:
    if any(typer.is_type(element, "array") for element in node.expressions):
        raise refuse(LABEL, "an ARRAY of ARRAYs", node, "BigQuery can not construct one")
    return node


def _anonymous(node: exp.Anonymous, typer: Typer) -> Any:
    raise refuse(LABEL, f"function {node.name.upper()}", node)


# ---------------------------------------------------------------------------- results


def finish(data: Any) -> Any:
    """BigQuery's result rules for arrays: a NULL array is ``[]``; an array can not hold NULL."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for name, column in zip(data.schema.names, data.columns, strict=True):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            if pc.any(pc.is_null(pc.list_flatten(column))).as_py():
                raise SqlError(
                    f"BigQuery SQL: Array cannot have a null element; error in writing field {name}", kind="engine"
                )
            if column.null_count:
                empty = pa.array([[]] * len(column), type=column.type)
                column = pc.if_else(pc.is_null(column), empty, column)
        columns.append(column)
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, schema=data.schema)
    return pa.Table.from_arrays(columns, schema=data.schema)


# ---------------------------------------------------------------------------- the allow-list

STRUCTURE = QUERY_STRUCTURE | {
    exp.Add,
    exp.Sub,
    exp.Struct,
    exp.PropertyEQ,
    exp.IgnoreNulls,
    exp.TsOrDsToDate,
    exp.TsOrDsToTimestamp,
    exp.RawString,
    exp.WeekStart,
}
FUNCTIONS = SHARED_FUNCTIONS | {
    exp.CountIf,
    exp.LogicalAnd,
    exp.LogicalOr,
    exp.GroupConcat,
    exp.StartsWith,
    exp.SafeDivide,
    exp.GenerateDateArray,
    exp.ArrayReverse,
    exp.UnixSeconds,
    exp.Date,
    exp.Datetime,
    exp.Timestamp,
    exp.AtTimeZone,
    exp.StrToUnix,
}

REWRITES: dict[type, Rewrite] = {
    exp.Literal: _literal,
    exp.Div: _div,
    exp.IntDiv: _intdiv,
    exp.Sqrt: _checked("__hr_bq_sqrt"),
    exp.Ln: _checked("__hr_bq_ln"),
    exp.Log: _log,
    exp.Cast: _cast,
    exp.DateTrunc: _trunc,
    exp.DatetimeTrunc: _trunc,
    exp.TimestampTrunc: _timestamp_trunc,
    exp.DateAdd: _add,
    exp.DateSub: _add,
    exp.DatetimeAdd: _add,
    exp.DatetimeSub: _add,
    exp.TimestampAdd: _add,
    exp.TimestampSub: _add,
    exp.DateDiff: _diff,
    exp.TimestampDiff: _diff,
    exp.DatetimeDiff: _diff,
    exp.Extract: _extract,
    exp.TimeToStr: _format,
    exp.StrToTime: _parse_timestamp,
    exp.StrToDate: _parse_date,
    exp.Bracket: _bracket,
    exp.ArrayAgg: _array_agg,
    exp.Unnest: _unnest,
    exp.Dot: _dot,
    exp.Avg: _avg,
    exp.TryCast: _cast,
    exp.Substring: _substring,
    exp.Concat: _concat,
    exp.DPipe: _concat,
    exp.CurrentDate: _current_date,
    exp.Array: _array,
    exp.Anonymous: _anonymous,
}


class _BigQueryRules(Rules):
    def parameter_type(self, name: str, value: Any) -> exp.DataType:
        return parameter_type(name, value)

    def finish(self, data: Any) -> Any:
        return finish(data)


RULES = _BigQueryRules(
    label=LABEL,
    dialect="bigquery",
    nodes=frozenset(STRUCTURE | FUNCTIONS),
    rewrites=REWRITES,
    macros=MACROS,
    names={exp.Bracket: "array subscript", exp.SafeFunc: "SAFE. function prefix", exp.Dot: "field access"},
)
