"""BigQuery extraction: one query, with bound parameters, to a Parquet artifact.

``extract(ctx, sql, params=...)`` runs on either side of the profile with the same SQL:

* **aws (cloud) profile**: the official google-cloud-bigquery client runs a dry run first (its
  byte estimate is logged and recorded as ``bigquery_bytes_estimate``), then the query job;
  results come through the Storage Read API when ``google-cloud-bigquery-storage`` is installed
  and the endpoint is Google's own, else through REST pages. Parameters are typed
  ``ScalarQueryParameter``/``ArrayQueryParameter`` values, never text in the SQL.
* **local profile**: the same SQL, transpiled from the BigQuery dialect by sqlglot, on DuckDB over
  the Parquet/CSV tables of ``settings.local_tables`` (layout in :mod:`steps.backends.sql_local`) and the
  upstream outputs given in ``tables=``; ``@name`` parameters become DuckDB prepared parameters.
  ``tables=`` is local only: BigQuery can not read the S3 artifact store, so on the cloud side
  upstream data must already be a BigQuery (or GCS external) table; passing it there is an error.

Both sides stream the result a batch at a time (memory bounded by a page, not the result) into
``<pipeline>/<run_id>/<task>/result.parquet`` with rows counted, in one schema
(:func:`steps.backends.sql_local.canonical_schema`). A failing query raises one line with BigQuery's (or
DuckDB's) message and the SQL line at fault; nothing is written then.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steps.backends.bigquery_params import scalar_types
from steps.backends.sql_errors import SqlError
from steps.backends.sql_local import LocalSql, local_table_paths, store_parquet, write_parquet
from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, HandoffFailed, HeadraceError, NotFoundError, TransientError, UserError
from steps.core.settings import Settings
from steps.runtime.context import StepContext

POSITION = re.compile(r"\s*at \[(\d+):(\d+)\]")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def extract(
    ctx: StepContext,
    sql: str,
    params: dict[str, Any] | None = None,
    tables: dict[str, Any] | None = None,
) -> ArtifactRef:
    """Run ``sql`` with ``params`` bound and store the result as Parquet; returns its reference."""
    key = ctx.output_key("result")
    if ctx.profile == "aws":
        if tables:
            raise UserError(
                f"pipeline {ctx.pipeline}, task {ctx.task}: bigquery.extract tables= ({', '.join(tables)}) only works on the local "
                "profile; on BigQuery, load upstream outputs into a table (or a GCS external table) and name it in the SQL"
            )
        ref = store_parquet(ctx, key, lambda path: _run_cloud(ctx, sql, params or {}, path))
    else:
        ref = store_parquet(ctx, key, lambda path: _run_local(ctx, sql, params or {}, tables or {}, path))
    ctx.log.info("BigQuery extract: %s rows, %s bytes -> %s", ref.rows, ref.bytes, ref.uri)
    return ref


def _run_local(ctx: StepContext, sql: str, params: Mapping[str, Any], tables: Mapping[str, Any], path: Path) -> int:
    engine = LocalSql("bigquery", tables_dir=ctx.settings.local_tables or None, tables=local_table_paths(ctx, tables))
    try:
        rows, prepared = engine.run_to_parquet(sql, params, path)
    except SqlError as error:
        raise error.in_task(ctx.pipeline, ctx.task) from error
    ctx.log.info("BigQuery (local DuckDB): read %s bytes of tables", prepared.source_bytes)
    ctx.record(bigquery_bytes_estimate=prepared.source_bytes, bigquery_engine="duckdb")
    return rows


# ---------------------------------------------------------------------------- cloud side


def query_parameter(name: str, value: Any) -> Any:
    """A typed BigQuery query parameter for a Python value (lists become ARRAY parameters)."""
    from google.cloud import bigquery

    if isinstance(value, list | tuple):
        typed = [v for v in value if v is not None]
        if not typed:
            raise UserError(f"parameter @{name}: an empty list has no element type; pass at least one value")
        return bigquery.ArrayQueryParameter(name, bigquery_type(name, typed[0]), list(value))
    return bigquery.ScalarQueryParameter(name, bigquery_type(name, value), value)


def bigquery_type(name: str, value: Any) -> str:
    """The BigQuery type of a Python parameter value (the table the local side shares:
    :data:`steps.backends.bigquery_params.PARAMETER_TYPES`)."""
    return scalar_types(name, value)[0]


def make_client(settings: Settings) -> Any:
    """The BigQuery client for these settings; a plain-http endpoint is a local server (no auth)."""
    from google.cloud import bigquery

    if not settings.bigquery_project:
        raise ConfigError(
            "bigquery_project: the aws profile runs BigQuery queries in a project; "
            "set HEADRACE_BIGQUERY_PROJECT or bigquery_project in headrace.toml"
        )
    kwargs: dict[str, Any] = {"project": settings.bigquery_project, "location": settings.bigquery_location}
    if settings.bigquery_endpoint:
        kwargs["client_options"] = {"api_endpoint": settings.bigquery_endpoint}
        if settings.bigquery_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
    try:
        return bigquery.Client(**kwargs)
    except Exception as error:  # google.auth raises DefaultCredentialsError here, among others
        raise ConfigError(
            f"BigQuery client: {error}; set GOOGLE_APPLICATION_CREDENTIALS or workload identity"
        ) from error


def storage_api_available(settings: Settings) -> bool:
    """The Storage Read API (gRPC) is used only against Google itself and when installed."""
    if settings.bigquery_endpoint:
        return False
    try:
        import google.cloud.bigquery_storage  # noqa: F401
    except ImportError:
        return False
    return True


def translate_error(error: Exception, what: str) -> HeadraceError:
    """One line for a BigQuery API error: its own message, ``at [L:C]`` shown as ``line L``."""
    from google.api_core import exceptions as api

    message = str(getattr(error, "message", "") or error)
    details = getattr(error, "errors", None) or []
    if details and isinstance(details[0], dict) and details[0].get("message"):
        message = str(details[0]["message"])
    message = " ".join(ANSI.sub("", message).split())  # one line, whatever the server sent
    position = POSITION.search(message)
    if position:
        message = f"line {position.group(1)}: " + POSITION.sub("", message, count=1)
    line = f"{what}: {message}"
    if isinstance(error, api.NotFound):
        return NotFoundError(line)
    if isinstance(error, api.Forbidden | api.Unauthorized):
        return ConfigError(f"{line}; check the credentials and the project's BigQuery permissions")
    if isinstance(error, api.TooManyRequests | api.ServerError | api.ServiceUnavailable):
        return TransientError(line)
    if isinstance(error, api.BadRequest):
        return UserError(line)
    return HandoffFailed(line, reason=message)


def _storage_client() -> Any:
    from google.cloud import bigquery_storage

    return bigquery_storage.BigQueryReadClient()  # type: ignore[no-untyped-call]


def _write_rows(job: Any, use_storage: bool, path: Path) -> int:
    """Stream the job's rows into Parquet, one page (or Storage API stream block) at a time."""
    rows = job.result()
    batches = iter(rows.to_arrow_iterable(bqstorage_client=_storage_client() if use_storage else None))
    first = next(batches, None)
    if first is None:  # an empty result still has a schema: take it from a fresh iterator
        return write_parquet([], job.result().to_arrow(create_bqstorage_client=False).schema, path)
    return write_parquet(itertools.chain([first], batches), first.schema, path)


def _run_cloud(ctx: StepContext, sql: str, params: Mapping[str, Any], path: Path) -> int:
    from google.api_core.exceptions import GoogleAPICallError
    from google.cloud import bigquery

    client = make_client(ctx.settings)
    parameters = [query_parameter(name, value) for name, value in params.items()]
    what = f"pipeline {ctx.pipeline}, task {ctx.task}: BigQuery"
    try:
        dry = client.query(
            sql, job_config=bigquery.QueryJobConfig(query_parameters=parameters, dry_run=True, use_query_cache=False)
        )
        estimate = int(dry.total_bytes_processed or 0)
        ctx.log.info("BigQuery dry run: the query will process %s bytes", estimate)
        ctx.record(bigquery_bytes_estimate=estimate, bigquery_engine="bigquery")
        job = client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=parameters))
        try:
            job.result()
        except (KeyboardInterrupt, SystemExit):  # the pod is being stopped: do not leave the job billing
            job.cancel()
            raise
        use_storage = storage_api_available(ctx.settings)
        count = _write_rows(job, use_storage, path)
    except GoogleAPICallError as error:
        raise translate_error(error, what) from error
    except ValueError as error:  # the client validates parameters and SQL types locally
        raise UserError(f"{what}: {error}") from error
    finally:
        client.close()
    ctx.record(
        bigquery_job_id=job.job_id,
        bigquery_bytes_processed=int(job.total_bytes_processed or 0),
        bigquery_bytes_billed=int(job.total_bytes_billed or 0),
        bigquery_read="storage-api" if use_storage else "rest-pages",
    )
    return count
