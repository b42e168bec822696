"""The local side of BigQuery and Athena: their SQL, transpiled with sqlglot, run on DuckDB.

A query is parsed in its own dialect (``bigquery`` or ``athena``), its tables are resolved to
local Parquet/CSV files, and it is written out as DuckDB SQL with ``unsupported_level=RAISE``: a
construct sqlglot can not translate stops the query with its name instead of running something
else. Translating is not enough to answer as the cloud does, so every construct must also be on
the dialect's allow-list (:mod:`steps.backends.bigquery_local`, :mod:`steps.backends.athena_local`, machinery in
:mod:`steps.backends.sql_parity`), possibly through a rewrite; anything else is refused with one line.
DuckDB runs in UTC, as both BigQuery and Athena evaluate, whatever the machine's zone. Query
parameters stay parameters: BigQuery ``@name`` and Athena ``:name`` / ``?`` become DuckDB
prepared-statement parameters (``$name``), never text, cast to the type the cloud gives them.

Where tables are found (``settings.local_tables``, the folder ``tables_dir`` here)::

    <tables_dir>/<dataset>/<table>.parquet | .csv | <table>/ (a folder of Parquet files)
    <tables_dir>/<table>.parquet | .csv | <table>/              (unqualified names)

``project.dataset.table`` and ``dataset.table`` (BigQuery) or ``database.table`` (Athena) map to
``<dataset>/<table>``; the project is ignored (``<project>/<dataset>/<table>`` is tried first).
An unqualified Athena name is looked up in ``<database>/`` (the query's database), then at the
top. Names passed in ``tables=`` (upstream outputs) win over files.

Results are normalised (:func:`canonical`) so both sides of a backend return the same schema:
integers are int64, floats float64, text string, timestamps microseconds (instants in UTC), and DuckDB's HUGEINT
sums are brought back to int64.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.backends.sql_errors import SqlError
from steps.core.contract import ArtifactRef
from steps.core.errors import NotFoundError, UserError

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot import exp

DIALECT_NAMES = {"bigquery": "BigQuery", "athena": "Athena"}
SUFFIXES = (".parquet", ".csv")
#: Rows per Arrow batch when results stream to Parquet (memory is bounded by one batch).
BATCH_ROWS = 64 * 1024


class MissingTable(SqlError, NotFoundError):
    """A table named by the query exists neither in ``tables=`` nor under the tables folder."""


@dataclass
class Prepared:
    """A query ready for DuckDB: its SQL, its parameters and the files its tables read."""

    sql: str
    parameters: dict[str, Any]
    sources: dict[str, list[Path]] = field(default_factory=dict)
    tree: Any = None
    rules: Any = None

    @property
    def source_bytes(self) -> int:
        """Bytes of every file the query reads: the local stand-in for "bytes processed"."""
        return sum(p.stat().st_size for files in self.sources.values() for p in files)


def dialect_rules(dialect: str) -> Any:
    """The dialect's allow-list and rewrites (:class:`steps.backends.sql_parity.Rules`)."""
    if dialect == "bigquery":
        from steps.backends import bigquery_local

        return bigquery_local.RULES
    from steps.backends import athena_local

    return athena_local.RULES


def describe(sources: Mapping[str, list[Path]], con: Any) -> dict[str, dict[str, Any]]:
    """Column types of each view, as sqlglot types, read from the files' own schemas on ``con``
    (the connection the query then runs on)."""
    from sqlglot import exp

    schema: dict[str, dict[str, Any]] = {}
    if not sources:
        return schema
    try:
        for view, files in sources.items():
            names = [str(p) for p in files]
            relation = con.read_csv(names[0]) if names[0].endswith(".csv") else con.read_parquet(names)
            schema[view] = {
                column: exp.DataType.build(str(kind), dialect="duckdb")
                for column, kind in zip(relation.columns, relation.types, strict=True)
            }
    except Exception:  # an unreadable file is reported when the query runs, with its path
        return {}
    return schema


def one_line(text: str) -> str:
    """Engine messages span lines (context, carets); a user sees one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = [line for line in lines if not line.startswith(("LINE ", "^"))]
    return " ".join(kept)


def local_table_paths(ctx: Any, tables: Mapping[str, Any]) -> dict[str, Path]:
    """Local files for ``tables=`` entries: an Artifact, an ArtifactRef, a path or a URI."""
    from steps.runtime.values import Artifact

    paths: dict[str, Path] = {}
    for name, value in tables.items():
        if isinstance(value, Artifact):
            paths[name] = value.local_path()
        elif isinstance(value, ArtifactRef):
            paths[name] = ctx.artifact(value).local_path()
        elif isinstance(value, Path):
            paths[name] = value
        elif isinstance(value, str):
            paths[name] = ctx.artifact(ArtifactRef(value, 0)).local_path() if "://" in value else Path(value)
        else:
            raise UserError(
                f"pipeline {ctx.pipeline}, task {ctx.task}: tables[{name!r}] is a {type(value).__name__}; pass an upstream output "
                "(Artifact/ArtifactRef) or a path to Parquet/CSV"
            )
    return paths


def _find_files(base: Path) -> list[Path] | None:
    for suffix in SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return [candidate]
    if base.is_dir():
        files = sorted(p for p in base.rglob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))
        if files:
            return files
    return None


def source_files(path: Path) -> list[Path]:
    """The Parquet/CSV files behind a ``tables=`` entry (a file, or a folder of Parquet files)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith((".", "_")))
    return [path]


class LocalSql:
    """Runs one dialect's SQL on DuckDB over local tables; one instance per query is fine."""

    def __init__(
        self,
        dialect: str,
        *,
        tables_dir: str | Path | None = None,
        tables: Mapping[str, Path] | None = None,
        default_database: str | None = None,
    ) -> None:
        if dialect not in DIALECT_NAMES:
            raise ValueError(f"dialect {dialect!r}: use one of {', '.join(DIALECT_NAMES)}")
        self.dialect = dialect
        self.label = DIALECT_NAMES[dialect]
        self.tables_dir = Path(tables_dir) if tables_dir else None
        self.tables = {name.lower(): path for name, path in (tables or {}).items()}
        self.default_database = default_database
        self._con: Any = None

    # ------------------------------------------------------------------ parsing

    def parse(self, sql: str) -> exp.Expr:
        import sqlglot
        from sqlglot.errors import ParseError, TokenError

        try:
            statements = [s for s in sqlglot.parse(sql, read=self.dialect) if s is not None]
        except ParseError as error:
            first = error.errors[0] if error.errors else {}
            line = first.get("line")
            what = first.get("description") or str(error).splitlines()[0]
            near = first.get("highlight") or ""
            raise SqlError(
                f"{self.label} SQL line {line}: syntax error: {what}" + (f" near {near!r}" if near else ""),
                kind="syntax",
                line=line,
                detail=str(what),
            ) from error
        except TokenError as error:
            raise SqlError(f"{self.label} SQL: {error}", kind="syntax", detail=str(error)) from error
        if len(statements) != 1:
            raise SqlError(
                f"{self.label} SQL: expected one statement, found {len(statements)}; run one query per step",
                kind="syntax",
            )
        return statements[0]

    # ------------------------------------------------------------------ tables

    def _candidates(self, parts: list[str]) -> list[Path]:
        if self.tables_dir is None:
            return []
        base = self.tables_dir
        if len(parts) == 1 and self.default_database:
            return [base / self.default_database / parts[0], base / parts[0]]
        if len(parts) == 1:
            return [base / parts[0]]
        if len(parts) == 3:
            return [base.joinpath(*parts), base / parts[1] / parts[2]]
        return [base.joinpath(*parts)]

    def _from_tables_arg(self, parts: list[str]) -> Path | None:
        full = ".".join(parts).lower()
        if full in self.tables:
            return self.tables[full]
        qualified_by_default = (
            len(parts) == 2 and self.default_database and parts[0].lower() == self.default_database.lower()
        )
        if len(parts) == 1 or qualified_by_default:
            return self.tables.get(parts[-1].lower())
        return None

    def resolve(self, parts: list[str], line: int | None) -> list[Path]:
        """The files behind a table name, or a :class:`MissingTable` saying where it looked."""
        given = self._from_tables_arg(parts)
        if given is not None:
            if not given.exists():
                raise MissingTable(
                    f"table {'.'.join(parts)}: the tables= entry points to {given}, which does not exist",
                    kind="table",
                    line=line,
                    name=".".join(parts),
                )
            return source_files(given)
        candidates = self._candidates(parts)
        for candidate in candidates:
            files = _find_files(candidate)
            if files:
                return files
        looked = [f"tables= ({', '.join(sorted(self.tables)) or 'none given'})"]
        looked += [f"{c}.parquet|.csv|/" for c in candidates]
        if self.tables_dir is None:
            looked.append("no local_tables folder is set (HEADRACE_LOCAL_TABLES)")
        where = f"line {line}: " if line else ""
        raise MissingTable(
            f"{self.label} SQL {where}table {'.'.join(parts)} not found; looked in {', '.join(looked)}; "
            "add the file or pass it in tables=",
            kind="table",
            line=line,
            name=".".join(parts),
        )

    # ------------------------------------------------------------------ prepare

    def prepare(self, sql: str, params: Mapping[str, Any] | None = None) -> Prepared:
        """Parse, check, resolve tables, bind parameters and write the DuckDB SQL."""
        from sqlglot import exp
        from sqlglot.errors import ErrorLevel, UnsupportedError

        from steps.backends.sql_parity import Refused, Typer

        tree = self.parse(sql)
        original = tree.copy()
        rules = dialect_rules(self.dialect)

        cte_names = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        sources: dict[str, list[Path]] = {}
        views: dict[tuple[str, ...], str] = {}
        for table in list(tree.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier):
                continue
            parts = [p.name for p in table.parts]
            if len(parts) == 1 and parts[0].lower() in cte_names:
                continue
            key = tuple(p.lower() for p in parts)
            if key not in views:
                view = f"__headrace_t{len(views)}"
                sources[view] = self.resolve(parts, table.this.meta.get("line"))
                views[key] = view
            alias = table.args.get("alias")
            replacement = exp.Table(this=exp.to_identifier(views[key]))
            replacement.set("alias", alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(parts[-1])))
            table.replace(replacement)

        parameters = self._bind(tree, dict(params or {}), rules)
        tree = rules.normalize(tree)
        typer = Typer(tree, describe(sources, self._connection()), self.dialect)
        try:
            tree = rules.apply(tree, typer)
        except Refused as error:
            raise SqlError(str(error), kind="unsupported", line=error.line, name=error.construct) from error
        try:
            duck_sql = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        except UnsupportedError as error:
            raise SqlError(
                f"{self.label} SQL: sqlglot can not translate this to DuckDB: {one_line(str(error))}; "
                "rewrite that part to run the query locally",
                kind="unsupported",
                detail=one_line(str(error)),
            ) from error
        return Prepared(duck_sql, parameters, sources, original, rules)

    def _bind(self, tree: exp.Expr, params: dict[str, Any], rules: Any) -> dict[str, Any]:
        from sqlglot import exp

        used: dict[str, Any] = {}
        by_lower = {name.lower(): name for name in params}
        for node in list(tree.find_all(exp.Parameter, exp.Placeholder)):
            name = node.name
            if isinstance(node, exp.Placeholder) and not name:
                raise SqlError(
                    f"{self.label} SQL: a positional ? parameter was left unbound; pass params= in query order",
                    kind="parameter",
                )
            key = by_lower.get(name.lower())
            if key is None:
                mark = "@" if self.dialect == "bigquery" else ":"
                raise SqlError(
                    f"{self.label} SQL: parameter {mark}{name} is used but not given; pass params={{'{name}': ...}}",
                    kind="parameter",
                    name=name,
                )
            used[name] = params[key]
            typed = exp.Cast(this=exp.Placeholder(this=name), to=rules.parameter_type(name, params[key]))
            typed.meta["headrace_parameter"] = True
            node.replace(typed)
        return used

    # ------------------------------------------------------------------ run

    def _connection(self) -> Any:
        """This engine's DuckDB connection, opened on first use: the query runs on the one that read
        the tables' types (a second connection cost ~15 ms of every SQL task): in memory, in UTC,
        installing nothing."""
        if self._con is None:
            import duckdb

            self._con = duckdb.connect(":memory:", config={"TimeZone": "UTC", "autoinstall_known_extensions": False})
        return self._con

    def close(self) -> None:
        """Close the connection (a query's results are already written or in memory)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connect(self, prepared: Prepared) -> Any:
        con = self._connection()
        for macro in prepared.rules.macros:
            con.execute(macro)
        for view, files in prepared.sources.items():
            names = [str(p) for p in files]
            relation = con.read_csv(names[0]) if names[0].endswith(".csv") else con.read_parquet(names)
            relation.create_view(view)
        return con

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[pa.Table, Prepared]:
        """Run the query; returns the canonical Arrow result (in memory) and what was prepared."""
        import duckdb

        try:
            prepared = self.prepare(sql, params)
            con = self._connect(prepared)
            try:
                result = con.sql(prepared.sql, params=prepared.parameters).to_arrow_table()
            except duckdb.Error as error:
                raise self._engine_error(error, sql, prepared) from error
        finally:
            self.close()
        return canonical(prepared.rules.finish(result)), prepared

    def run_to_parquet(
        self, sql: str, params: Mapping[str, Any] | None, path: Path, *, batch_rows: int = BATCH_ROWS
    ) -> tuple[int, Prepared]:
        """Run the query streaming its result into ``path`` (Parquet); returns rows and what ran."""
        import duckdb

        try:
            prepared = self.prepare(sql, params)
            con = self._connect(prepared)
            try:
                reader = con.sql(prepared.sql, params=prepared.parameters).to_arrow_reader(batch_rows)
                batches = (prepared.rules.finish(batch) for batch in reader)
                rows = write_parquet(batches, reader.schema, path)
            except duckdb.Error as error:
                raise self._engine_error(error, sql, prepared) from error
        finally:
            self.close()
        return rows, prepared

    def _engine_error(self, error: Exception, sql: str, prepared: Prepared) -> SqlError:
        text = str(error)
        message = one_line(text)
        column = re.search(r'Referenced column "([^"]+)" (?:was )?not found', text)
        if column:
            name = column.group(1)
            line = identifier_line(prepared.tree, name) or caret_line(text, sql)
            where = f"line {line}: " if line else ""
            return SqlError(
                f"{self.label} SQL {where}column {name} not found ({message})",
                kind="column",
                line=line,
                name=name,
                detail=message,
            )
        line = caret_line(text, sql)
        where = f"line {line}: " if line else ""
        return SqlError(f"{self.label} SQL {where}{message}", kind="engine", line=line, detail=message)


def identifier_line(tree: Any, name: str) -> int | None:
    """Line of the first identifier called ``name`` in the original query (sqlglot keeps it)."""
    from sqlglot import exp

    if tree is None:
        return None
    for identifier in tree.find_all(exp.Identifier):
        if identifier.name.lower() == name.lower() and identifier.meta.get("line"):
            return int(identifier.meta["line"])
    return None


def caret_line(engine_message: str, sql: str) -> int | None:
    """Map DuckDB's ``LINE n: text`` / ``^^^`` pointer back to a line of the user's SQL.

    DuckDB points into the translated SQL, so the pointed-at text is looked up in the original.
    """
    lines = engine_message.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"LINE \d+: (.*)$", line)
        if not match or index + 1 >= len(lines):
            continue
        pointer = lines[index + 1]
        start = pointer.find("^")
        if start < 0:
            continue
        offset = start - (len(line) - len(match.group(1)))
        width = len(pointer.strip())
        fragment = match.group(1)[max(offset, 0) : max(offset, 0) + width].strip().strip('"')
        if not fragment:
            continue
        for number, source in enumerate(sql.splitlines(), start=1):
            if fragment.lower() in source.lower():
                return number
    return None


def _canonical_type(arrow_type: Any) -> Any:
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_dictionary(t):
        return _canonical_type(t.value_type)
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_timestamp(t):  # an instant is shown in UTC whatever the engine's session zone
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_canonical_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _canonical_type(f.type)) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_canonical_type(t.key_type), _canonical_type(t.item_type))
    if pa.types.is_decimal(t):  # engines differ in the precision they report; the scale is the answer
        return pa.decimal128(38, t.scale)
    return t


def canonical_schema(schema: pa.Schema) -> pa.Schema:
    """The result schema every side writes for an engine's schema (rules in the module docstring)."""
    import pyarrow as pa

    fields = []
    for item in schema:
        t = item.type
        # DuckDB sums integers into HUGEINT (decimal(38,0)); BigQuery and Athena answer INT64/BIGINT.
        target = pa.int64() if pa.types.is_decimal(t) and t.scale == 0 and t.precision > 18 else _canonical_type(t)
        fields.append(pa.field(item.name, target))
    return pa.schema(fields)


def conform(data: Any, schema: pa.Schema) -> Any:
    """Cast a table or record batch to ``schema``; a value that does not fit is an error, not a wrap."""
    import pyarrow as pa

    if data.schema == schema:
        return data
    try:
        return data.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise SqlError(f"query result: {error}; cast the column in the SQL", kind="engine") from error


def canonical(table: pa.Table) -> pa.Table:
    """One result schema for every side: see the module docstring for the rules."""
    return conform(table, canonical_schema(table.schema))


def write_parquet(batches: Iterable[Any], schema: pa.Schema, path: Path) -> int:
    """Stream record batches into one Parquet file in the canonical schema; returns the rows.

    Memory stays at one batch whatever the result size.
    """
    import pyarrow.parquet as pq

    target = canonical_schema(schema)
    rows = 0
    with pq.ParquetWriter(path, target) as writer:
        for batch in batches:
            if batch.num_rows:
                writer.write_batch(conform(batch, target))
                rows += batch.num_rows
    return rows


def store_parquet(ctx: Any, key: str, produce: Callable[[Path], int]) -> ArtifactRef:
    """Let ``produce`` write the result to a scratch file, then store it at ``key + ".parquet"``.

    The store makes it visible only once complete, so a failure leaves nothing that looks done.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="headrace-sql-") as scratch:
        path = Path(scratch) / "result.parquet"
        rows = produce(path)
        ref: ArtifactRef = ctx.store.put_file(path, key + ".parquet", rows=rows, format="parquet")
        return ref


def _tokens(sql: str, dialect: str) -> list[Any]:
    from sqlglot import Dialect
    from sqlglot.errors import TokenError

    try:
        return list(Dialect.get_or_raise(dialect).tokenize(sql))
    except TokenError as error:
        raise SqlError(f"{DIALECT_NAMES.get(dialect, dialect)} SQL: {error}", kind="syntax") from error


def count_positional_parameters(sql: str, dialect: str) -> int:
    """How many ``?`` parameter marks the query has (marks inside strings or comments do not count)."""
    return sum(1 for t in _tokens(sql, dialect) if t.token_type.name == "PLACEHOLDER" and t.text == "?")


def name_positional_parameters(sql: str, dialect: str, names: list[str]) -> str:
    """Rewrite the i-th ``?`` as ``:<names[i]>`` (text outside the marks is kept byte for byte).

    Athena's ``?`` parameters are positional; ``params=`` is a dict, bound in its order.
    """
    marks = [t for t in _tokens(sql, dialect) if t.token_type.name == "PLACEHOLDER" and t.text == "?"]
    if not marks:
        return sql
    if len(marks) != len(names):
        raise SqlError(
            f"{DIALECT_NAMES.get(dialect, dialect)} SQL: the query has {len(marks)} ? parameter(s) but params= "
            f"gives {len(names)}; pass one value per ?, in order",
            kind="parameter",
        )
    out, last = [], 0
    for token, name in zip(marks, names, strict=True):
        out.append(sql[last : token.start])
        out.append(f":{name}")
        last = token.end + 1
    out.append(sql[last:])
    return "".join(out)


def positional_parameters(sql: str, dialect: str) -> tuple[str, list[str]]:
    """Rewrite named ``:name`` parameters as ``?`` and return the names in query order.

    Athena's ExecutionParameters are positional; users may write ``:name`` for readability.
    """
    tokens = _tokens(sql, dialect)
    out, names, last = [], [], 0
    for index in range(len(tokens) - 1):
        colon, word = tokens[index], tokens[index + 1]
        if colon.token_type.name == "COLON" and word.start == colon.end + 1 and re.match(r"^\w+$", word.text):
            if index > 0 and tokens[index - 1].token_type.name == "COLON":
                continue
            out.append(sql[last : colon.start])
            out.append("?")
            names.append(word.text)
            last = word.end + 1
    out.append(sql[last:])
    return "".join(out), names
