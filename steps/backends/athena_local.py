"""Athena's (Trino's) answers on DuckDB: the allow-list and the rewrites.

Each rewrite exists because the plain sqlglot translation answers differently from Trino's
documented semantics (Trino docs, "Functions and operators", cited per rule); the parity corpus in
``tests/parity/athena_corpus.py`` holds the documented answer for every construct allowed here.

* Integer ``/`` truncates toward zero and raises ``Division by zero`` ("Mathematical operators");
  DuckDB divides into a double. Decimal division keeps a decimal scale: refused.
* A numeric literal with a point and no exponent is a DECIMAL ("Decimal literals"); DuckDB agrees
  on the type, sqlglot's inference does not, so such literals are typed before inference.
* ``CAST(double AS integer)`` rounds halfway cases away from zero ("Conversion functions").
* ``arr[i]`` raises out of bounds; ``map[key]`` raises on a missing key; ``element_at`` returns
  NULL ("Array functions", "Map functions"); DuckDB returns NULL for both subscripts.
* ``date_add`` and ``+ INTERVAL`` on a DATE return a DATE ("Date and time functions").
* ``AT TIME ZONE`` keeps the instant and changes the zone; DuckDB returns a wall-clock TIMESTAMP:
  refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlglot import exp

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

LABEL = "Athena"

MACROS = (
    "CREATE MACRO __hr_trino_intdiv(a, b) AS CASE WHEN b = 0 THEN error('Division by zero') ELSE a // b END",
    "CREATE MACRO __hr_trino_subscript(arr, i) AS CASE WHEN i < 1 THEN "
    "error('SQL array indices start at 1') WHEN i > len(arr) THEN "
    "error('Array subscript must be less than or equal to array length: ' || CAST(i AS VARCHAR) || ' > ' "
    "|| CAST(len(arr) AS VARCHAR)) ELSE arr[i] END",
    "CREATE MACRO __hr_trino_element_at(arr, i) AS CASE WHEN i = 0 THEN "
    "error('SQL array indices start at 1') WHEN abs(i) > len(arr) THEN NULL ELSE arr[i] END",
    "CREATE MACRO __hr_trino_substr2(s, p) AS CASE WHEN p = 0 OR abs(p) > length(s) THEN '' ELSE substring(s, p) END",
    "CREATE MACRO __hr_trino_substr(s, p, l) AS "
    "CASE WHEN p = 0 OR abs(p) > length(s) THEN '' ELSE substring(s, p, l) END",
    "CREATE MACRO __hr_trino_int(s) AS CASE WHEN s IS NULL THEN NULL WHEN regexp_full_match(s, '[+-]?[0-9]+') "
    "THEN CAST(s AS BIGINT) ELSE error('Cannot cast to INT: ' || s) END",
    "CREATE MACRO __hr_trino_safe_int(s) AS CASE WHEN regexp_full_match(s, '[+-]?[0-9]+') THEN TRY_CAST(s AS BIGINT) END",
    "CREATE MACRO __hr_trino_map_get(m, k) AS CASE WHEN NOT map_contains(m, k) THEN "
    "error('Key not present in map: ' || CAST(k AS VARCHAR)) ELSE m[k] END",
)

#: strftime elements (as sqlglot writes Trino's MySQL-style ones into DuckDB's) verified by the corpus.
FORMAT_ELEMENTS = frozenset({"%Y", "%m", "%d", "%H", "%M", "%S", "%j", "%y", "%%"})
DATE_UNITS = frozenset({"DAY", "WEEK", "MONTH", "QUARTER", "YEAR"})
TIME_UNITS = DATE_UNITS | {"HOUR", "MINUTE", "SECOND"}


def parameter_type(name: str, value: Any) -> exp.DataType:
    """DuckDB's spelling of the type Athena gives the literal :func:`steps.backends.athena.sql_literal` sends."""
    return exp.DataType.build(_duck_type(name, value), dialect="duckdb")


def _duck_type(name: str, value: Any) -> str:
    if value is None or isinstance(value, str):
        return "VARCHAR"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER" if -(2**31) <= value < 2**31 else "BIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, decimal.Decimal):
        _, digits, exponent = value.as_tuple()
        scale = max(0, -int(exponent))
        return f"DECIMAL({max(len(digits), scale, 1)}, {scale})"
    if isinstance(value, dt.datetime):
        return "TIMESTAMPTZ" if value.tzinfo is not None else "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    raise UserError(
        f"Athena parameter {name}: a {type(value).__name__} has no SQL literal; "
        "use str, int, float, bool, Decimal, date or datetime"
    )


def is_decimal_literal(node: Any) -> bool:
    """``1.5`` is DECIMAL(2, 1) in Trino (a double needs an exponent: ``1.5E0``)."""
    if not isinstance(node, exp.Literal) or node.is_string:
        return False
    text = str(node.this).lower()
    return "." in text and "e" not in text


def normalize(tree: exp.Expr) -> exp.Expr:
    """Type decimal literals explicitly, so sqlglot's inference sees what Trino sees."""
    for node in list(tree.find_all(exp.Literal)):
        if is_decimal_literal(node):
            text = str(node.this).lstrip("-")
            whole, _, fraction = text.partition(".")
            precision = max(len(whole.lstrip("0")) + len(fraction), 1)
            typed = cast(exp.Literal.string(str(node.this)), f"DECIMAL({precision}, {len(fraction)})")
            if node is tree:
                return typed
            node.replace(typed)
    return tree


# ---------------------------------------------------------------------------- rewrites


def _div(node: exp.Div, typer: Typer) -> Any:
    left, right = node.this, node.expression
    if typer.is_type(left, "decimal") or typer.is_type(right, "decimal"):
        raise refuse(LABEL, "division of DECIMAL values", node)
    if typer.is_type(left, "integer") and typer.is_type(right, "integer"):
        return call("__hr_trino_intdiv", left, right)
    if typer.is_type(left, "integer", "float") and typer.is_type(right, "integer", "float"):
        return node  # a double is involved: IEEE division on both engines (x/0 = Infinity)
    raise refuse(LABEL, "division of operands whose types could not be inferred", node)


def _cast(node: exp.Cast, typer: Typer) -> Any:
    if is_parameter(node):
        return node
    to = node.to
    if to.this in exp.DataType.INTEGER_TYPES and typer.is_type(node.this, "float"):
        return exp.Cast(this=call("round", node.this), to=to)
    if to.this in exp.DataType.INTEGER_TYPES and typer.is_type(node.this, "text"):
        macro = "__hr_trino_safe_int" if isinstance(node, exp.TryCast) else "__hr_trino_int"
        return exp.Cast(this=call(macro, node.this), to=to)
    if to.this == exp.DataType.Type.BOOLEAN and typer.is_type(node.this, "text"):
        raise refuse(LABEL, "CAST of a varchar to boolean", node)
    if to.this in (exp.DataType.Type.DECIMAL,) and typer.is_type(node.this, "float"):
        raise refuse(LABEL, "CAST of a double to DECIMAL", node)
    if to.this in exp.DataType.TEXT_TYPES and typer.is_type(node.this, "float", "decimal"):
        raise refuse(LABEL, "CAST of a double/decimal to varchar", node)
    if to.this in exp.DataType.TEXT_TYPES and not typer.is_type(node.this, "integer", "text", "date", "boolean"):
        raise refuse(LABEL, "CAST to varchar of this type", node)  # timestamps: Trino writes milliseconds
    return node


def _substring(node: exp.Substring, typer: Typer) -> Any:
    length = node.args.get("length")
    if length is None:
        return call("__hr_trino_substr2", node.this, node.args["start"])
    if not (isinstance(length, exp.Literal) and not length.is_string):
        raise refuse(LABEL, "substr with a length that is not a non-negative number literal", node)
    return call("__hr_trino_substr", node.this, node.args["start"], length)


def _bracket(node: exp.Bracket, typer: Typer) -> Any:
    if len(node.expressions) != 1:
        raise refuse(LABEL, "subscript with several indexes", node)
    base, index = node.this, node.expressions[0]
    element_at = bool(node.args.get("safe"))
    if not element_at and isinstance(index, exp.Literal) and not index.is_string:
        index = exp.Literal.number(int(index.this) + 1)  # sqlglot keeps a literal subscript 0-based
    if typer.is_type(base, "array"):
        return call("__hr_trino_element_at" if element_at else "__hr_trino_subscript", base, index)
    if typer.is_type(base, "map"):
        return node if element_at else call("__hr_trino_map_get", base, node.expressions[0])
    raise refuse(LABEL, "subscript of a value whose type could not be inferred", node)


def _as_date(node: Any, typer: Typer, what: str) -> Any:
    unit = unit_of(node)
    source = node.this
    if typer.is_type(source, "date"):
        if unit and unit not in DATE_UNITS:
            raise refuse(LABEL, f"{what} of a date by {unit}", node)
        return cast(node.copy(), "DATE")
    if typer.is_type(source, "timestamp", "timestamptz"):
        if unit and unit not in TIME_UNITS:
            raise refuse(LABEL, f"{what} by {unit}", node)
        return node
    raise refuse(LABEL, f"{what} of a value whose type could not be inferred", node)


def _date_add(node: Any, typer: Typer) -> Any:
    return _as_date(node, typer, "date_add")


def _date_trunc(node: Any, typer: Typer) -> Any:
    return _as_date(node, typer, "date_trunc")


def _plus_interval(node: exp.Add | exp.Sub, typer: Typer) -> Any:
    interval = node.expression
    if not isinstance(interval, exp.Interval):
        return node
    unit = unit_of(interval)
    if typer.is_type(node.this, "date"):
        if unit not in DATE_UNITS:
            raise refuse(LABEL, f"date {'+' if isinstance(node, exp.Add) else '-'} INTERVAL of {unit}", node)
        return cast(node.copy(), "DATE")
    if typer.is_type(node.this, "timestamp", "timestamptz"):
        return node
    raise refuse(LABEL, "INTERVAL arithmetic on a value whose type could not be inferred", node)


def _diff(node: Any, typer: Typer) -> Any:
    unit = unit_of(node)
    if unit not in TIME_UNITS:
        raise refuse(LABEL, f"date_diff by {unit or '(none)'}", node)
    return node


def _format(node: Any, typer: Typer) -> Any:
    literal_format(node, LABEL, FORMAT_ELEMENTS, "date_format/date_parse")
    return node


def _at_time_zone(node: exp.AtTimeZone, typer: Typer) -> Any:
    raise refuse(LABEL, "AT TIME ZONE", node, "Trino keeps the instant, DuckDB returns the local wall-clock time")


def _avg(node: exp.Avg, typer: Typer) -> Any:
    if not typer.is_type(node.this, "integer", "float"):
        raise refuse(LABEL, "avg of a value that is not an integer or double", node, "avg of a decimal is a decimal")
    return node


def _current_timezone(node: Any, typer: Typer) -> Any:
    return exp.Literal.string("UTC")  # Athena's session zone is UTC, and so is the local engine's


def _current_date(node: exp.CurrentDate, typer: Typer) -> Any:
    if node.this is not None:
        raise refuse(LABEL, "CURRENT_DATE with a time zone argument", node)
    return node  # the session zone is UTC on both sides


def _anonymous(node: exp.Anonymous, typer: Typer) -> Any:
    raise refuse(LABEL, f"function {node.name.lower()}", node)


# ---------------------------------------------------------------------------- the allow-list

STRUCTURE = QUERY_STRUCTURE | {
    exp.Array,
    exp.Literal,
    exp.Unnest,
    exp.Lambda,
    exp.ColumnDef,
}
FUNCTIONS = SHARED_FUNCTIONS | {
    exp.ArrayAgg,
    exp.DPipe,
    exp.Concat,
    exp.Reverse,
    exp.Sqrt,
    exp.Ln,
    exp.ArrayContains,
    exp.Transform,
    exp.ArrayFilter,
    exp.ArraySort,
    exp.Map,
    exp.Hour,
    exp.Year,
    exp.Month,
    exp.Day,
    exp.DayOfWeekIso,
    exp.Extract,
    exp.TimeStrToTime,
    exp.WeekOfYear,
    exp.TimeToUnix,
    exp.Struct,
    exp.FromISO8601Timestamp,
}

REWRITES: dict[type, Rewrite] = {
    exp.Div: _div,
    exp.Cast: _cast,
    exp.Bracket: _bracket,
    exp.DateAdd: _date_add,
    exp.TsOrDsAdd: _date_add,
    exp.DateTrunc: _date_trunc,
    exp.TimestampTrunc: _date_trunc,
    exp.Add: _plus_interval,
    exp.Sub: _plus_interval,
    exp.DateDiff: _diff,
    exp.TimeToStr: _format,
    exp.StrToTime: _format,
    exp.AtTimeZone: _at_time_zone,
    exp.CurrentTimezone: _current_timezone,
    exp.Avg: _avg,
    exp.TryCast: _cast,
    exp.Substring: _substring,
    exp.CurrentDate: _current_date,
    exp.Anonymous: _anonymous,
}


class _AthenaRules(Rules):
    def parameter_type(self, name: str, value: Any) -> exp.DataType:
        return parameter_type(name, value)

    def normalize(self, tree: exp.Expr) -> exp.Expr:
        return normalize(tree)


RULES = _AthenaRules(
    label=LABEL,
    dialect="athena",
    nodes=frozenset(STRUCTURE | FUNCTIONS),
    rewrites=REWRITES,
    macros=MACROS,
    names={exp.Bracket: "subscript", exp.AtTimeZone: "AT TIME ZONE"},
)
