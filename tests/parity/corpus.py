"""The shape of a parity corpus: queries with the answer the cloud's documentation gives.

A :class:`Case` is one query, its parameters and its documented answer: a single value in column
``v`` with its Arrow type (``expect``/``kind``), several rows (:class:`Rows`), or an error the
cloud raises (:class:`Raises`). ``doc`` names the documentation section the answer comes from.
An engine's outcome is *right* (equal value and type, or an error where the cloud raises),
*refused* (a one-line :class:`SqlError` of kind ``unsupported``) or *wrong*; the suites assert that
nothing is wrong.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from steps.backends.sql_errors import SqlError

UTC = dt.UTC


@dataclass(frozen=True)
class Raises:
    """The cloud raises; ``pattern`` is searched (case-insensitive) in the local engine's message."""

    pattern: str = ""


@dataclass(frozen=True)
class Rows:
    """Several rows, in order, as dicts."""

    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Deviation:
    """The independent emulator answers differently from the documentation, and why."""

    reason: str


@dataclass(frozen=True)
class Case:
    group: str
    sql: str
    expect: Any
    kind: pa.DataType | None = None
    params: dict[str, Any] = field(default_factory=dict)
    emulator: Deviation | None = None
    #: Athena only: the column type and text GetQueryResults carries for this answer (None: NULL);
    #: for :class:`Rows`, the column types in order.
    athena: tuple[str, str | None] | list[str] | None = None

    @property
    def id(self) -> str:
        return re.sub(r"\s+", " ", self.sql)[:70]


def same(actual: Any, expected: Any) -> bool:
    """Equal values, NaN equal to NaN, floats exactly (the documented answers are exact)."""
    if isinstance(expected, float) and isinstance(actual, float):
        return (math.isnan(expected) and math.isnan(actual)) or actual == expected
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(same(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(same(actual[k], expected[k]) for k in expected)
    if isinstance(expected, decimal.Decimal) and isinstance(actual, decimal.Decimal):
        return actual == expected
    return type(actual) is type(expected) and actual == expected


def verdict(case: Case, run: Any) -> tuple[str, str]:
    """``("right" | "refused" | "wrong", detail)`` for one engine run (``run()`` returns a table)."""
    try:
        table = run()
    except SqlError as error:
        message = str(error)
        if "\n" in message:
            return "wrong", f"a multi-line error: {message!r}"
        if error.kind == "unsupported":
            return "refused", message
        if isinstance(case.expect, Raises) and re.search(case.expect.pattern, message, re.IGNORECASE):
            return "right", message
        return "wrong", f"raised {message!r}"
    if isinstance(case.expect, Raises):
        return "wrong", f"answered {table.to_pylist()!r} where the cloud raises"
    if isinstance(case.expect, Rows):
        rows = table.to_pylist()
        return ("right", "") if same(rows, case.expect.rows) else ("wrong", f"rows {rows!r}")
    if table.num_columns != 1 or table.num_rows != 1:
        return "wrong", f"shape {table.shape}: {table.to_pylist()!r}"
    value = table.column(0)[0].as_py()
    if not same(value, case.expect):
        return "wrong", f"value {value!r} ({table.schema.field(0).type})"
    if case.kind is not None and table.schema.field(0).type != case.kind:
        return "wrong", f"type {table.schema.field(0).type}, documented {case.kind}"
    return "right", ""
