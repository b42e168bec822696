"""BigQuery query parameter types: one table for the cloud side and the local side.

Its own light module (no sqlglot, no DuckDB): ``steps.backends.bigquery`` is imported with every
pipeline that names it, so what it imports is paid at every task start.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

from steps.core.errors import UserError

#: The BigQuery type of a query parameter for each Python value, and DuckDB's spelling of the same
#: type (the local side casts each parameter to it). In order: bool before int (``True`` is an
#: int), an aware datetime before a naive one, datetime before date.
PARAMETER_TYPES: tuple[tuple[Callable[[Any], bool], str, str], ...] = (
    (lambda v: v is None or isinstance(v, str), "STRING", "VARCHAR"),
    (lambda v: isinstance(v, bool), "BOOL", "BOOLEAN"),
    (lambda v: isinstance(v, int), "INT64", "BIGINT"),
    (lambda v: isinstance(v, float), "FLOAT64", "DOUBLE"),
    (lambda v: isinstance(v, decimal.Decimal), "NUMERIC", "DECIMAL(38, 9)"),
    (lambda v: isinstance(v, dt.datetime) and v.tzinfo is not None, "TIMESTAMP", "TIMESTAMPTZ"),
    (lambda v: isinstance(v, dt.datetime), "DATETIME", "TIMESTAMP"),
    (lambda v: isinstance(v, dt.date), "DATE", "DATE"),
    (lambda v: isinstance(v, bytes), "BYTES", "BLOB"),
)


def scalar_types(name: str, value: Any) -> tuple[str, str]:
    """(BigQuery type, DuckDB type) of one parameter value; a value with no BigQuery type is a UserError."""
    for matches, bigquery, duckdb in PARAMETER_TYPES:
        if matches(value):
            return bigquery, duckdb
    raise UserError(
        f"parameter @{name}: a {type(value).__name__} has no BigQuery type; "
        "use str, int, float, bool, Decimal, date, datetime, bytes or a list of them"
    )
