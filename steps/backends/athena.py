"""Athena SQL: one query (or a CTAS) to a Parquet artifact, on Athena or on DuckDB.

``query(ctx, sql, database=..., params=..., tables=..., ctas=...)`` runs the same SQL on both sides:

* **aws (cloud) profile**: boto3 ``start_query_execution`` in ``settings.athena_workgroup`` with
  results under ``settings.athena_output`` (default: ``<task output prefix>/athena/``), polled
  with backoff until it ends; rows are read through paginated ``GetQueryResults`` and typed from
  Athena's column metadata, or, with ``ctas=True``, Athena itself writes Parquet under the task's
  output prefix (the way to move big results). ``DataScannedInBytes`` is recorded as
  ``data_scanned_bytes``. A failed query raises :class:`HandoffFailed` carrying Athena's
  ``StateChangeReason`` (which names the SQL line: ``line 3:8: Column 'x' cannot be resolved``).
  ``tables=`` registers upstream Parquet outputs as Glue external tables in ``database`` so the
  same SQL finds them by name.
* **local profile**: the Trino/Athena dialect through sqlglot on DuckDB (:mod:`steps.backends.sql_local`),
  tables from ``settings.local_tables`` (``<dir>/<database>/<table>.parquet`` and friends) and
  ``tables=``; ``data_scanned_bytes`` is the size of the files read.

Parameters: ``?`` marks take ``params`` values in dict order; ``:name`` marks take them by name.
They reach Athena as ``ExecutionParameters`` and DuckDB as prepared parameters, never as text
spliced into the query. Both sides return one schema (:func:`steps.backends.sql_local.canonical`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from steps.backends.athena_results import result_batches, static_types
from steps.backends.handoff import Backoff, Phase, poll
from steps.backends.sql_errors import SqlError
from steps.backends.sql_local import (
    LocalSql,
    canonical,
    count_positional_parameters,
    local_table_paths,
    name_positional_parameters,
    positional_parameters,
    store_parquet,
    write_parquet,
)
from steps.core.contract import ArtifactRef
from steps.core.errors import EXIT_USAGE, ConfigError, HandoffFailed, UserError
from steps.runtime.context import StepContext
from steps.storage.aws import client, error_code, provider_errors, translate

#: Athena answers in seconds, not the minutes of a training job: poll from 0.2 s, up to every 10 s.
BACKOFF = Backoff(initial=0.2, factor=1.6, maximum=10.0)

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def query(
    ctx: StepContext,
    sql: str,
    database: str = "default",
    params: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
    ctas: bool = False,
) -> ArtifactRef:
    """Run ``sql`` in ``database`` and store the result as Parquet; returns its reference."""
    params = dict(params or {})
    if ctx.profile == "aws":
        return _run_cloud(ctx, sql, database, params, tables or {}, ctas)
    ref = store_parquet(
        ctx, ctx.output_key("result"), lambda path: _run_local(ctx, sql, database, params, tables or {}, path)
    )
    ctx.log.info("Athena query (local DuckDB): %s rows, %s bytes -> %s", ref.rows, ref.bytes, ref.uri)
    return ref


# ---------------------------------------------------------------------------- local side


def _run_local(
    ctx: StepContext, sql: str, database: str, params: dict[str, Any], tables: Mapping[str, Any], path: Path
) -> int:
    engine = LocalSql(
        "athena",
        tables_dir=ctx.settings.local_tables or None,
        tables=local_table_paths(ctx, tables),
        default_database=database,
    )
    try:
        named_sql = name_positional_parameters(sql, "athena", list(params))
        rows, prepared = engine.run_to_parquet(named_sql, params, path)
    except SqlError as error:
        raise error.in_task(ctx.pipeline, ctx.task) from error
    ctx.record(data_scanned_bytes=prepared.source_bytes, athena_engine="duckdb")
    return rows


# ---------------------------------------------------------------------------- parameters


def sql_literal(value: Any) -> str:
    """A Trino SQL literal for a parameter value: what Athena's ExecutionParameters expect.

    Typed so that Trino reads the Python type (the local side casts to the same types,
    :func:`steps.backends.athena_local.parameter_type`): a float is a DOUBLE (``1.5`` alone would be a
    DECIMAL), a Decimal a DECIMAL, an aware datetime an instant with its zone (in UTC).
    """
    import math

    from sqlglot import exp

    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return f"TIMESTAMP '{value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=' ')} UTC'"
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan()"
        if math.isinf(value):
            return "infinity()" if value > 0 else "-infinity()"
        text = repr(value)
        return text if "e" in text else text + "E0"
    if isinstance(value, decimal.Decimal):
        return f"DECIMAL '{value}'"
    if value is None or isinstance(value, str | bool | int):
        return str(exp.convert(value).sql("athena"))
    raise UserError(
        f"Athena parameter value {value!r}: a {type(value).__name__} has no SQL literal; "
        "use str, int, float, bool, Decimal, date or datetime"
    )


def execution_parameters(sql: str, params: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The query with ``?`` marks only, and the literals to bind to them in order."""
    positional_sql, names = positional_parameters(sql, "athena")
    if names:
        missing = [n for n in names if n not in params]
        if missing:
            raise UserError(f"Athena SQL: parameter :{missing[0]} is used but not given; pass params={{...}}")
        return positional_sql, [sql_literal(params[n]) for n in names]
    marks = count_positional_parameters(sql, "athena")
    if not marks:
        return sql, []
    if marks != len(params):
        raise UserError(
            f"Athena SQL: the query has {marks} ? parameter(s) but params= gives {len(params)}; "
            "pass one value per ?, in order"
        )
    return sql, [sql_literal(v) for v in params.values()]


# ---------------------------------------------------------------------------- states


class QueryRejected(HandoffFailed):
    """Athena refused the query itself (its error category USER: bad SQL, missing table or
    column): the user must fix the SQL and no retry helps, so it exits like a usage error."""

    exit_code = EXIT_USAGE
    retryable = False


#: Every Athena query state and what it means here: still going, done, or ended badly.
STATES = {
    "QUEUED": "running",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}
ATHENA_USER_ERROR = 2  # AthenaError.ErrorCategory: 1 system, 2 user, 3 other


def check_state(execution: Mapping[str, Any], where: str) -> str:
    """Our state (``running`` or ``succeeded``) for a ``GetQueryExecution`` result.

    FAILED and CANCELLED raise :class:`HandoffFailed` (or :class:`QueryRejected` for a user
    error) carrying Athena's ``StateChangeReason``; a state this table does not know raises too.
    """
    status = execution.get("Status", {})
    state = str(status.get("State", "QUEUED"))
    query_id = execution.get("QueryExecutionId", "?")
    ours = STATES.get(state)
    if ours is None:
        raise HandoffFailed(f"{where}: Athena query {query_id} is in unknown state {state}", reason=state)
    if ours in ("failed", "cancelled"):
        reason = " ".join(str(status.get("StateChangeReason") or state.lower()).split())
        category = status.get("AthenaError", {}).get("ErrorCategory")
        error = QueryRejected if category == ATHENA_USER_ERROR else HandoffFailed
        raise error(f"{where}: Athena query {query_id} {state.lower()}: {reason}", reason=reason)
    return ours


def _wait(athena: Any, query_id: str, task: str) -> dict[str, Any]:
    """Poll the query until it ends (:func:`steps.backends.handoff.poll`); a failure raises."""

    def describe() -> dict[str, Any]:
        try:
            execution: dict[str, Any] = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        except provider_errors() as error:
            raise translate(error, f"{task}: athena get_query_execution") from error
        return execution

    def phase(execution: dict[str, Any]) -> Phase:
        return Phase.RUNNING if check_state(execution, task) == "running" else Phase.SUCCEEDED

    return poll(describe, phase, backoff=BACKOFF)


# ---------------------------------------------------------------------------- results


def results_table(pages: Iterable[Mapping[str, Any]], hints: Mapping[str, str] | None = None) -> Any:
    """All pages as one canonical Arrow table (small results; :func:`result_batches` streams)."""
    import pyarrow as pa

    batches = list(result_batches(pages, hints))
    if not batches:
        return pa.table({})
    return canonical(pa.Table.from_batches(batches))


# ---------------------------------------------------------------------------- Glue tables


def hive_type(arrow_type: Any) -> str:
    """The Glue/Hive column type Athena reads a Parquet column as."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t):
        return "tinyint"
    if pa.types.is_int16(t):
        return "smallint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{hive_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in t) + ">"
    return "string"


def parquet_schema(s3: Any, bucket: str, key: str) -> Any:
    """A Parquet file's schema from its footer alone (two ranged GETs, not the whole file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tail = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-8")["Body"].read()
    if len(tail) != 8 or tail[4:] != b"PAR1":
        raise UserError(f"s3://{bucket}/{key}: not a Parquet file; Athena tables= takes Parquet outputs")
    footer_length = int.from_bytes(tail[:4], "little")
    footer = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{footer_length + 8}")["Body"].read()
    return pq.read_schema(pa.BufferReader(b"PAR1" + footer))


def s3_store(ctx: StepContext) -> Any:
    from steps.storage.s3 import S3Store

    store = ctx.store
    if not isinstance(store, S3Store):
        raise ConfigError(
            f"pipeline {ctx.pipeline}, task {ctx.task}: Athena reads tables and writes results on S3; "
            "set artifact_root to s3://bucket/prefix (HEADRACE_ARTIFACT_ROOT)"
        )
    return store


def register_table(ctx: StepContext, glue: Any, database: str, name: str, ref: ArtifactRef) -> str:
    """Create or update the Glue external table ``database.name`` over an upstream Parquet output.

    Athena reads every file under a table's location, so a single-file output is copied (server
    side) to its own prefix under this task's output; a folder output is used where it is.
    Returns the table's location.
    """
    from steps.storage.s3 import split_uri

    store = s3_store(ctx)
    bucket, key = split_uri(ref.uri)
    try:
        if ref.format == "dir" or not key.endswith(".parquet"):
            # Athena skips files whose names start with _ or . (manifests, _SUCCESS); so do we.
            listed = store.keys_under(bucket, key.rstrip("/") + "/")
            files = [k for k in listed if not k.rsplit("/", 1)[-1].startswith(("_", "."))]
            if not files:
                raise UserError(f"tables[{name!r}]: {ref.uri} holds no Parquet files")
            schema = parquet_schema(store.client, bucket, files[0])
            location = f"s3://{bucket}/{key.rstrip('/')}/"
        else:
            schema = parquet_schema(store.client, bucket, key)
            table_key = store.object_key(ctx.output_key(f"tables/{name}")) + "/data.parquet"
            store.client.copy_object(Bucket=store.bucket, Key=table_key, CopySource={"Bucket": bucket, "Key": key})
            location = f"s3://{store.bucket}/{table_key.rsplit('/', 1)[0]}/"
        table_input = {
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "headrace.source": ref.uri},
            "StorageDescriptor": {
                "Columns": [{"Name": f.name, "Type": hive_type(f.type)} for f in schema],
                "Location": location,
                "InputFormat": PARQUET_INPUT,
                "OutputFormat": PARQUET_OUTPUT,
                "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
            },
        }
        try:
            glue.get_database(Name=database)
        except provider_errors() as error:
            if error_code(error) != "EntityNotFoundException":
                raise
            glue.create_database(DatabaseInput={"Name": database})
        try:
            glue.create_table(DatabaseName=database, TableInput=table_input)
        except provider_errors() as error:
            if error_code(error) != "AlreadyExistsException":
                raise
            glue.update_table(DatabaseName=database, TableInput=table_input)
    except provider_errors() as error:
        raise translate(
            error, f"pipeline {ctx.pipeline}, task {ctx.task}: register Glue table {database}.{name}"
        ) from error
    ctx.log.info("Athena: table %s.%s reads %s", database, name, location)
    return location


# ---------------------------------------------------------------------------- cloud side


def _as_ref(ctx: StepContext, name: str, value: Any) -> ArtifactRef:
    from steps.runtime.values import Artifact

    if isinstance(value, Artifact):
        return value.ref
    if isinstance(value, ArtifactRef):
        return value
    if isinstance(value, str) and value.startswith("s3://"):
        return ArtifactRef(value, 0, format="dir" if not value.endswith(".parquet") else "parquet")
    if isinstance(value, Path):
        raise UserError(
            f"pipeline {ctx.pipeline}, task {ctx.task}: tables[{name!r}] is a local path; on Athena pass an upstream output "
            "(Artifact/ArtifactRef) or an s3:// URI"
        )
    raise UserError(
        f"pipeline {ctx.pipeline}, task {ctx.task}: tables[{name!r}] is a {type(value).__name__}; pass an upstream output"
    )


def _run_cloud(
    ctx: StepContext, sql: str, database: str, params: dict[str, Any], tables: Mapping[str, Any], ctas: bool
) -> ArtifactRef:
    store = s3_store(ctx)
    athena = client("athena", ctx.settings)
    if tables:
        glue = client("glue", ctx.settings)
        for name, value in tables.items():
            register_table(ctx, glue, database, name, _as_ref(ctx, name, value))

    query_sql, literals = execution_parameters(sql, params)
    result_key = ctx.output_key("result")
    ctas_table = f"headrace_{ctx.run_id}_{ctx.task}_{ctx.attempt}".replace("-", "_").lower()
    if ctas:
        store.delete_prefix(result_key)
        location = store.uri_for(result_key) + "/"
        query_sql = (
            f"CREATE TABLE {database}.{ctas_table} "
            f"WITH (format = 'PARQUET', write_compression = 'SNAPPY', external_location = '{location}') AS\n"
            + query_sql
        )
    output = ctx.settings.athena_output or store.uri_for(ctx.output_key("athena")) + "/"
    request: dict[str, Any] = {
        "QueryString": query_sql,
        "QueryExecutionContext": {"Database": database},
        "WorkGroup": ctx.settings.athena_workgroup,
        "ResultConfiguration": {"OutputLocation": output},
    }
    if literals:
        request["ExecutionParameters"] = literals
    try:
        query_id = athena.start_query_execution(**request)["QueryExecutionId"]
    except provider_errors() as error:
        raise translate(error, f"pipeline {ctx.pipeline}, task {ctx.task}: athena start_query_execution") from error
    ctx.log.info("Athena query %s started in %s", query_id, ctx.settings.athena_workgroup)
    try:
        execution = _wait(athena, query_id, f"pipeline {ctx.pipeline}, task {ctx.task}")
    except (KeyboardInterrupt, SystemExit):  # the pod is being stopped: do not leave Athena scanning
        athena.stop_query_execution(QueryExecutionId=query_id)
        raise
    scanned = int(execution.get("Statistics", {}).get("DataScannedInBytes", 0))
    ctx.log.info("Athena query %s succeeded; scanned %s bytes", query_id, scanned)
    ctx.record(data_scanned_bytes=scanned, athena_query_execution_id=query_id, athena_engine="athena")

    if ctas:
        return ctas_result(ctx, store, result_key, database, ctas_table)

    def write(path: Path) -> int:
        pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        batches = result_batches(pages, static_types(sql))
        try:
            first = next(batches, None)
            if first is None:
                raise HandoffFailed(f"Athena query {query_id}: GetQueryResults returned no page", reason="no results")
            return write_parquet(itertools.chain([first], batches), first.schema, path)
        except provider_errors() as error:
            raise translate(error, f"pipeline {ctx.pipeline}, task {ctx.task}: athena get_query_results") from error

    ref = store_parquet(ctx, result_key, write)
    ctx.log.info("Athena query: %s rows, %s bytes -> %s", ref.rows, ref.bytes, ref.uri)
    return ref


def ctas_result(ctx: StepContext, store: Any, result_key: str, database: str, table: str) -> ArtifactRef:
    """Reference the Parquet files Athena wrote: rows from their footers, then a manifest, last."""
    import json

    import pyarrow.parquet as pq

    from steps.storage.s3 import MANIFEST

    prefix = store.object_key(result_key)
    keys = [k for k in store.keys_under(store.bucket, prefix + "/") if not k.endswith(MANIFEST)]
    if not keys:
        raise HandoffFailed(
            f"pipeline {ctx.pipeline}, task {ctx.task}: Athena CTAS reported success but wrote no Parquet under {store.uri_for(result_key)}/",
            reason="no output files",
        )
    files, rows, total = [], 0, 0
    for key in keys:
        head = store.client.head_object(Bucket=store.bucket, Key=key)
        size = int(head["ContentLength"])
        tail = store.client.get_object(Bucket=store.bucket, Key=key, Range="bytes=-8")["Body"].read()
        footer_length = int.from_bytes(tail[:4], "little")
        footer = store.client.get_object(Bucket=store.bucket, Key=key, Range=f"bytes=-{footer_length + 8}")["Body"]
        rows += pq.ParquetFile(io.BytesIO(b"PAR1" + footer.read())).metadata.num_rows
        total += size
        files.append({"path": key[len(prefix) + 1 :], "bytes": size, "sha256": None})
    manifest = json.dumps({"files": files, "rows": rows, "format": "parquet"}, sort_keys=True).encode()
    store.put_object(f"{prefix}/{MANIFEST}", manifest, {"format": "parquet", "rows": str(rows)})
    try:
        client("glue", ctx.settings).delete_table(DatabaseName=database, Name=table)
    except Exception as error:  # the data stays; a leftover catalog entry is only untidy
        ctx.log.warning("Athena CTAS: could not drop the helper table %s.%s: %s", database, table, error)
    return ArtifactRef(store.uri_for(result_key), total, rows, "parquet")
