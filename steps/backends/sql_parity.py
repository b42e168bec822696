"""What lets the local engine answer as BigQuery and Athena do, or refuse: shared machinery.

sqlglot translates a dialect's SQL into DuckDB SQL that *runs*, but running is not answering as
the cloud does: DuckDB divides integers into doubles, returns TIMESTAMP where BigQuery returns
DATE, answers ``inf`` where BigQuery raises, ignores some time-zone arguments. So a query reaches
DuckDB only when every construct in it is on its dialect's allow-list (:class:`Rules`): a node
class or function verified by the parity corpus (``tests/parity/``) to give the cloud's documented
answer, possibly after a rewrite into one of our DuckDB macros. Anything else is refused with one
line naming the construct; unknown means refused, never guessed.

Rewrites that depend on operand types (integer vs floating division, a DATE result) read them
from sqlglot's type annotation of the query in its own dialect, over the tables' real schemas
(:class:`Typer`). Where a type can not be inferred the construct is refused too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from steps.core.errors import UserError

_ID = "headrace_id"


class Refused(UserError):
    """A construct the local engine will not run because it can not answer as the cloud does."""

    def __init__(self, message: str, *, construct: str, line: int | None) -> None:
        super().__init__(message)
        self.construct = construct
        self.line = line


def node_line(node: Any) -> int | None:
    """The SQL line a node starts on, from its own token or its first token-bearing child."""
    for child in node.walk():
        line = child.meta.get("line") if hasattr(child, "meta") else None
        if line:
            return int(line)
    return None


def refuse(label: str, construct: str, node: Any = None, why: str = "") -> Refused:
    """The one-line refusal: which construct, where, why, and what to do."""
    line = node_line(node) if node is not None else None
    where = f" line {line}" if line else ""
    reason = f" ({why})" if why else ""
    return Refused(
        f"{label} SQL{where}: {construct} is not verified to answer as {label} does on the local engine{reason}; "
        f"rewrite it, or run the query on {label}",
        construct=construct,
        line=line,
    )


class Typer:
    """Types of the nodes of a query, as sqlglot infers them in the query's own dialect.

    The inference runs on a copy (qualifying columns rewrites the tree); results come back to the
    original nodes through an id kept in each node's ``meta``.
    """

    def __init__(self, tree: exp.Expr, schema: Mapping[str, Mapping[str, Any]], dialect: str) -> None:
        from sqlglot import exp
        from sqlglot.errors import OptimizeError
        from sqlglot.optimizer.annotate_types import annotate_types
        from sqlglot.optimizer.qualify import qualify
        from sqlglot.schema import MappingSchema

        for index, node in enumerate(tree.walk()):
            node.meta[_ID] = index
        self.types: dict[int, exp.DataType] = {}
        self.unresolved: str | None = None
        if dialect == "bigquery":  # a zone-less timestamp column is what BigQuery calls a DATETIME
            schema = {
                view: {
                    name: exp.DataType.build("DATETIME", dialect="bigquery")
                    if kind.this == exp.DataType.Type.TIMESTAMP
                    else kind
                    for name, kind in columns.items()
                }
                for view, columns in schema.items()
            }
        mapping = MappingSchema(dict(schema), dialect=dialect) if schema else MappingSchema(dialect=dialect)
        copy = tree.copy()
        try:
            copy = qualify(copy, schema=mapping, dialect=dialect, identify=False, quote_identifiers=False)
        except OptimizeError as error:
            message = str(error)
            if "could not be resolved" in message:
                self.unresolved = message
            return
        except Exception:  # qualification is best effort: without it, type-dependent constructs refuse
            return
        try:
            annotate_types(copy, schema=mapping, dialect=dialect)
        except Exception:
            return
        for node in copy.walk():
            number = node.meta.get(_ID)
            node_type = getattr(node, "type", None)
            if number is not None and node_type is not None:
                self.types[number] = node_type

    def type_of(self, node: Any) -> exp.DataType | None:
        """The inferred type, or None when sqlglot could not tell."""
        from sqlglot import exp

        found = self.types.get(node.meta.get(_ID, -1))
        if found is None or found.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
            own = getattr(node, "_type", None)
            if isinstance(own, exp.DataType) and own.this != exp.DataType.Type.UNKNOWN:
                return own
            return None
        return found

    def is_type(self, node: Any, *kinds: str) -> bool:
        """Whether the node's inferred type is one of sqlglot's type groups or names."""
        from sqlglot import exp

        t = self.type_of(node)
        if t is None:
            return False
        groups = {
            "integer": exp.DataType.INTEGER_TYPES,
            "float": exp.DataType.REAL_TYPES - {exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL},
            "decimal": {exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL},
            "date": {exp.DataType.Type.DATE},
            "timestamp": {exp.DataType.Type.TIMESTAMP, exp.DataType.Type.DATETIME, exp.DataType.Type.TIMESTAMPNTZ},
            "timestamptz": {exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ},
            "array": {exp.DataType.Type.ARRAY},
            "map": {exp.DataType.Type.MAP},
            "text": exp.DataType.TEXT_TYPES,
        }
        return any(t.this in groups.get(kind, ()) for kind in kinds)


Rewrite = Callable[[Any, Typer], Any]


@dataclass(frozen=True)
class Rules:
    """One dialect's allow-list and rewrites.

    ``nodes``: node classes (structure, operators, functions) verified to translate faithfully
    as sqlglot writes them. ``rewrites``: node classes that are allowed only through a rewrite,
    which returns the replacement node, the node itself (verified as is) or raises
    :class:`Refused`. ``macros``: DuckDB ``CREATE MACRO`` statements the rewrites call.
    """

    label: str
    dialect: str
    nodes: frozenset[type]
    rewrites: Mapping[type, Rewrite]
    macros: tuple[str, ...] = ()
    names: Mapping[type, str] = field(default_factory=dict)

    def parameter_type(self, name: str, value: Any) -> exp.DataType:
        """The type the cloud gives a parameter with this Python value (DuckDB spelling)."""
        raise NotImplementedError

    def normalize(self, tree: exp.Expr) -> exp.Expr:
        """Make the tree say what the dialect means before types are inferred (default: as is)."""
        return tree

    def finish(self, data: Any) -> Any:
        """Apply the dialect's result rules to a table or batch (default: none)."""
        return data

    def construct_name(self, node: Any) -> str:
        """A name a user recognises: the SQL function name, else the construct's kind."""
        from sqlglot import exp

        kind = type(node)
        if kind in self.names:
            return self.names[kind]
        if isinstance(node, exp.Anonymous):
            return f"function {node.name.upper()}"
        if isinstance(node, exp.Func):
            return f"function {node.sql_name()}"
        return kind.__name__

    def check(self, tree: exp.Expr) -> None:
        """Refuse the first construct that is neither allowed as is nor through a rewrite."""
        for node in tree.walk():
            kind = type(node)
            if kind not in self.nodes and kind not in self.rewrites:
                raise refuse(self.label, self.construct_name(node), node)

    def apply(self, tree: exp.Expr, typer: Typer) -> exp.Expr:
        """Check the tree, then rewrite it bottom-up (children before parents); returns the root."""
        self.check(tree)
        type_nulls(tree, typer)
        for node in reversed(list(tree.walk())):
            rewrite = self.rewrites.get(type(node))
            if rewrite is None:
                continue
            replacement = rewrite(node, typer)
            if replacement is not node:
                replacement.meta.setdefault(_ID, node.meta.get(_ID))  # it answers with the node's type
                if node is tree:
                    tree = replacement
                else:
                    node.replace(replacement)
        return tree


def type_nulls(tree: exp.Expr, typer: Typer) -> None:
    """Give a result column that holds a NULL literal the type the dialect infers for it.

    DuckDB types ``CONCAT('a', NULL)`` as NULL where BigQuery says STRING; only columns with a NULL
    literal are cast, so an inference mistake can not silently convert a computed value.
    """
    from sqlglot import exp

    if not isinstance(tree, exp.Select):
        return
    for column in tree.expressions:
        value = column.this if isinstance(column, exp.Alias) else column
        kind = typer.type_of(value)
        if (
            kind is None
            or kind.is_type(exp.DataType.Type.NULL)
            or not any(isinstance(n, exp.Null) for n in value.walk())
        ):
            continue
        if kind.this in exp.DataType.NESTED_TYPES:
            continue
        typed = exp.Cast(this=value.copy(), to=kind.copy())
        typed.meta[PARAMETER] = True  # a cast of ours: not checked as the user's
        value.replace(typed)


def call(name: str, *args: Any) -> exp.Anonymous:
    """A call to a DuckDB function or one of our macros, written as is into the DuckDB SQL."""
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def cast(node: Any, duckdb_type: str) -> exp.Cast:
    """``CAST(node AS type)`` with the type given in DuckDB's own spelling."""
    from sqlglot import exp

    return exp.Cast(this=node, to=exp.DataType.build(duckdb_type, dialect="duckdb"))


def unit_of(node: Any, key: str = "unit") -> str:
    """The upper-case name of a date part argument (``MONTH``, ``'day'``), or ''."""
    from sqlglot import exp

    unit = node.args.get(key)
    if unit is None:
        return ""
    if isinstance(unit, exp.WeekStart):  # BigQuery's WEEK(<day>); plain WEEK is WEEK(SUNDAY)
        return f"WEEK({unit.this.name.upper()})"
    return str(unit.name if hasattr(unit, "name") else unit).upper()


PARAMETER = "headrace_parameter"


def is_parameter(node: Any) -> bool:
    """A bound parameter, cast to the type the cloud gives it (that cast is ours, not the user's)."""
    return bool(node.meta.get(PARAMETER))


def literal_format(node: Any, label: str, allowed: frozenset[str], what: str) -> None:
    """Refuse a format that is not a literal or uses a specifier outside ``allowed``.

    The format is read after sqlglot's conversion to DuckDB's strftime specifiers, so ``allowed``
    lists those whose output the corpus has verified against the dialect's documentation.
    """
    import re

    from sqlglot import exp

    fmt = node.args.get("format")
    if not isinstance(fmt, exp.Literal) or not fmt.is_string:
        raise refuse(label, f"{what} with a format that is not a string literal", node)
    for spec in re.findall(r"%-?.", fmt.this):
        if spec not in allowed:
            raise refuse(label, f"{what} format element {spec!r} (as DuckDB writes it)", node)


#: The query structure both dialects' local engines run as DuckDB does (selects, joins, set
#: operations, comparisons, CASE, windows...): each dialect's allow-list adds its own nodes to it.
QUERY_STRUCTURE: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.Select,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Alias,
        exp.TableAlias,
        exp.Column,
        exp.Identifier,
        exp.Table,
        exp.Subquery,
        exp.CTE,
        exp.With,
        exp.Union,
        exp.Except,
        exp.Intersect,
        exp.Star,
        exp.Boolean,
        exp.Null,
        exp.Paren,
        exp.Placeholder,
        exp.Tuple,
        exp.In,
        exp.Between,
        exp.Is,
        exp.Not,
        exp.And,
        exp.Or,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Mul,
        exp.Neg,
        exp.Mod,
        exp.Case,
        exp.If,
        exp.Distinct,
        exp.DataType,
        exp.DataTypeParam,
        exp.Var,
        exp.Interval,
        exp.Like,
        exp.Window,
        exp.Exists,
    }
)

#: The functions both dialects' local engines answer as their cloud does (aggregates, windows,
#: COALESCE, ...): each dialect's allow-list adds its own to it.
SHARED_FUNCTIONS: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.CurrentTimestamp,
        exp.RowNumber,
        exp.Rank,
        exp.DenseRank,
        exp.Lag,
        exp.Lead,
        exp.Count,
        exp.Sum,
        exp.Min,
        exp.Max,
        exp.Coalesce,
        exp.Nullif,
        exp.Upper,
        exp.Lower,
        exp.Length,
        exp.StrPosition,
        exp.Trim,
        exp.Split,
        exp.Pad,
        exp.RegexpLike,
        exp.Abs,
        exp.Round,
        exp.Floor,
        exp.Ceil,
        exp.Pow,
        exp.ArraySize,
        exp.ArrayConcat,
        exp.ArrayToString,
        exp.GenerateSeries,
        exp.LastDay,
        exp.UnixToTime,
    }
)
