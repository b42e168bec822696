"""Athena's GetQueryResults text, typed by the result metadata into the local side's Arrow types.

GetQueryResults returns every value as text (``VarCharValue``; no key for NULL) and each column's
type in ``ResultSetMetadata.ColumnInfo`` (``Type``, with ``Precision``/``Scale`` for decimals).
The text forms are Athena's (Trino's) own renderings:

* ``timestamp``: ``2024-01-02 01:04:05.000``; ``timestamp with time zone``:
  ``2024-01-02 01:04:05.000 UTC`` (or a region zone, or an offset such as ``+02:00``): an instant,
  returned in UTC as the local side does;
* ``date``: ``2024-01-02``; ``decimal``: ``3.50``; ``double``: ``3.5``, ``1.0E10``, ``Infinity``,
  ``NaN``; ``boolean``: ``true``; ``varbinary``: hex bytes separated by spaces;
* ``array``: ``[1, 2, null]``; ``map``: ``{a=1, b=2}``; ``row``: ``{a=1, b=x}``.

Where the metadata names only ``array``, ``map`` or ``row`` (Athena does not always give the
element types), the query's own static type (``hints``, from sqlglot) supplies them; a complex
column with neither is an error naming the column and the fix (a CAST in the SQL).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from steps.core.errors import HandoffFailed

INTEGERS = {"tinyint", "smallint", "integer", "int", "bigint"}
FLOATS = {"real", "float", "double"}


@dataclass(frozen=True)
class TrinoType:
    """A parsed Trino type: its base name, parameters (decimal), and children (complex types)."""

    name: str
    children: tuple[TrinoType, ...] = ()
    fields: tuple[str, ...] = ()
    scale: int = 0


def _split(text: str, separator: str = ",") -> list[str]:
    """Split at top-level separators (outside brackets, braces and parentheses)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def parse_type(signature: str, precision_scale: tuple[int, int] | None = None) -> TrinoType:
    """``array(row(a integer, b varchar))`` and friends into a :class:`TrinoType`."""
    text = signature.strip().lower()
    text = re.sub(r"^timestamp\(\d+\)", "timestamp", text)
    match = re.match(r"^(\w+)\s*\((.*)\)$", text, re.DOTALL)
    if not match:
        scale = precision_scale[1] if text == "decimal" and precision_scale else 0
        return TrinoType(text, scale=scale)
    name, inner = match.group(1), match.group(2)
    if name == "decimal":
        numbers = [int(n) for n in _split(inner)]
        return TrinoType("decimal", scale=numbers[1] if len(numbers) > 1 else 0)
    if name in ("varchar", "char"):
        return TrinoType(name)
    if name == "array":
        return TrinoType("array", (parse_type(inner),))
    if name == "map":
        key, value = _split(inner)
        return TrinoType("map", (parse_type(key), parse_type(value)))
    if name in ("row", "struct"):
        names, children = [], []
        for part in _split(inner):
            field_name, _, field_type = part.partition(" ")
            names.append(field_name.strip('"'))
            children.append(parse_type(field_type))
        return TrinoType("row", tuple(children), tuple(names))
    return TrinoType(name)


def is_complete(kind: TrinoType) -> bool:
    """Whether every nested type is known (``array`` alone is not)."""
    if kind.name == "array":
        return len(kind.children) == 1 and is_complete(kind.children[0])
    if kind.name == "map":
        return len(kind.children) == 2 and all(is_complete(c) for c in kind.children)
    if kind.name == "row":
        return bool(kind.children) and all(is_complete(c) for c in kind.children)
    return True


def arrow_type(kind: TrinoType) -> Any:
    """The Arrow type the local side gives a column of this type (see sql_local.canonical)."""
    import pyarrow as pa

    name = kind.name
    if name == "boolean":
        return pa.bool_()
    if name in INTEGERS:
        return pa.int64()
    if name in FLOATS:
        return pa.float64()
    if name == "decimal":
        return pa.decimal128(38, kind.scale)
    if name == "date":
        return pa.date32()
    if name == "timestamp":
        return pa.timestamp("us")
    if name == "timestamp with time zone":
        return pa.timestamp("us", tz="UTC")
    if name == "varbinary":
        return pa.binary()
    if name == "unknown":  # the type of a bare NULL (SELECT NULL)
        return pa.null()
    if name == "array":
        return pa.list_(arrow_type(kind.children[0]))
    if name == "map":
        return pa.map_(arrow_type(kind.children[0]), arrow_type(kind.children[1]))
    if name == "row":
        return pa.struct([pa.field(n, arrow_type(c)) for n, c in zip(kind.fields, kind.children, strict=True)])
    return pa.string()


def _instant(text: str) -> dt.datetime:
    wall, _, zone = text.rpartition(" ")
    local = dt.datetime.fromisoformat(wall)
    if zone in ("UTC", "Z"):
        tz: dt.tzinfo = dt.UTC
    elif re.match(r"^[+-]\d\d:\d\d$", zone):
        tz = dt.datetime.strptime(zone, "%z").tzinfo or dt.UTC
    else:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(zone)
    return local.replace(tzinfo=tz).astimezone(dt.UTC)


def parse_value(text: str | None, kind: TrinoType) -> Any:
    """One value from Athena's text form (``None`` and, inside complex values, ``null`` are NULL)."""
    if text is None:
        return None
    name = kind.name
    if name == "boolean":
        return text.lower() == "true"
    if name in INTEGERS:
        return int(text)
    if name in FLOATS:
        return float(text)
    if name == "decimal":
        return decimal.Decimal(text)
    if name == "date":
        return dt.date.fromisoformat(text)
    if name == "timestamp":
        return dt.datetime.fromisoformat(text)
    if name == "timestamp with time zone":
        return _instant(text)
    if name == "varbinary":
        return bytes.fromhex(text.replace(" ", ""))
    if name == "array":
        inner = _strip(text, "[", "]")
        return [_element(item, kind.children[0]) for item in _split(inner)]
    if name == "map":
        inner = _strip(text, "{", "}")
        pairs = [item.split("=", 1) for item in _split(inner)]
        return [(_element(k, kind.children[0]), _element(v, kind.children[1])) for k, v in pairs]
    if name == "row":
        inner = _strip(text, "{", "}")
        items = _split(inner)
        values = {}
        for field_name, child, item in zip(kind.fields, kind.children, items, strict=True):
            _, _, value = item.partition("=") if item.startswith(field_name + "=") else ("", "", item)
            values[field_name] = _element(value, child)
        return values
    return text


def _strip(text: str, opening: str, closing: str) -> str:
    if not (text.startswith(opening) and text.endswith(closing)):
        raise ValueError(f"expected {opening}...{closing}")
    return text[1:-1]


def _element(text: str, kind: TrinoType) -> Any:
    return None if text == "null" else parse_value(text, kind)


def column_types(columns: list[Mapping[str, Any]], hints: Mapping[str, str]) -> list[TrinoType]:
    """Each column's full type: the metadata's, else (for bare complex types) the query's own."""
    kinds = []
    for column in columns:
        scale = (int(column.get("Precision") or 38), int(column.get("Scale") or 0))
        kind = parse_type(str(column.get("Type", "varchar")), scale)
        if not is_complete(kind):
            hint = hints.get(column["Name"].lower())
            hinted = parse_type(hint) if hint else None
            if hinted is None or hinted.name != kind.name or not is_complete(hinted):
                raise HandoffFailed(
                    f"Athena result column {column['Name']}: Athena reports its type only as {kind.name} and the "
                    f"query does not say what it holds; CAST it in the SQL (for example CAST(x AS ARRAY(VARCHAR)))",
                    reason="untyped complex column",
                )
            kind = hinted
        kinds.append(kind)
    return kinds


def result_batches(pages: Iterable[Mapping[str, Any]], hints: Mapping[str, str] | None = None) -> Iterator[Any]:
    """Arrow record batches from ``GetQueryResults`` pages, one per page, typed by the metadata;
    the header row a SELECT's first page starts with is skipped."""
    import pyarrow as pa

    names: list[str] = []
    kinds: list[TrinoType] = []
    types: list[Any] = []
    for number, page in enumerate(pages):
        if number == 0:
            columns = page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"]
            names = [c["Name"] for c in columns]
            kinds = column_types(columns, hints or {})
            types = [arrow_type(k) for k in kinds]
        rows = [[cell.get("VarCharValue") for cell in row.get("Data", [])] for row in page["ResultSet"].get("Rows", [])]
        if number == 0 and rows and rows[0] == [c.get("Label", c["Name"]) for c in columns]:
            rows = rows[1:]
        arrays = []
        for i, (kind, arrow) in enumerate(zip(kinds, types, strict=True)):
            try:
                values = [parse_value(row[i] if i < len(row) else None, kind) for row in rows]
            except (ValueError, KeyError, decimal.InvalidOperation) as error:
                raise HandoffFailed(
                    f"Athena result column {names[i]}: a value is not in Athena's {kind.name} text form ({error}); "
                    "CAST the column to VARCHAR or JSON in the SQL",
                    reason="unreadable result",
                ) from error
            arrays.append(pa.array(values, type=arrow))
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def static_types(sql: str) -> dict[str, str]:
    """Result column name → Trino type, as sqlglot infers them from the query alone."""
    import sqlglot
    from sqlglot.optimizer.annotate_types import annotate_types

    try:
        tree = annotate_types(sqlglot.parse_one(sql, read="athena"), dialect="athena")
    except Exception:  # hints are a fallback: no hint, and a complex column says how to fix it
        return {}
    selects = getattr(tree, "selects", [])
    return {s.alias_or_name.lower(): s.type.sql("trino") for s in selects if s.type is not None}
