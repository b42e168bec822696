"""A local HTTP server speaking the BigQuery v2 REST API for the calls headrace makes.

It answers the official google-cloud-bigquery client: ``jobs.insert`` (query jobs, dry runs
included), ``jobs.get``, ``jobs.getQueryResults`` (paged), ``tables.get`` and ``tabledata.list``
for the job's anonymous result table. Queries really run: the SQL goes through
:class:`steps.backends.sql_local.LocalSql` (sqlglot from the BigQuery dialect to DuckDB) over a folder of
Parquet/CSV tables, with the job's typed query parameters decoded from their JSON form. Errors
come back in BigQuery's shape (``Unrecognized name: x at [3:5]``, ``Not found: Table ...``),
rows in its ``f``/``v`` form, results in pages of ``page_size`` rows.

What it does not do: BigQuery's own SQL semantics (ZetaSQL), the Storage Read API (gRPC), auth,
billing, scripting, DML, or any call not listed above (those get a 404 naming the route).

Because it answers with headrace's own transpiler, it can not disagree with the local side: the
BigQuery suites (``tests/backends/test_bigquery.py``, ``tests/parity``) run the cloud path against
the independent ``bqemulator`` instead (:mod:`tests.integration.bqemulator`). This server remains
only where a test reads back the requests headrace sent (the recipe-stream flow test).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyarrow as pa

from steps.backends.sql_errors import SqlError
from steps.backends.sql_local import LocalSql, MissingTable

ANON_DATASET = "_headrace_anon"


def decode_parameter(parameter: dict[str, Any]) -> Any:
    """A Python value from BigQuery's JSON query parameter (``parameterType``/``parameterValue``)."""
    kind = parameter["parameterType"]
    value = parameter.get("parameterValue", {})
    if kind["type"] == "ARRAY":
        element = {"type": kind["arrayType"]["type"]}
        return [decode_scalar(element["type"], item.get("value")) for item in value.get("arrayValues", [])]
    return decode_scalar(kind["type"], value.get("value"))


def decode_scalar(kind: str, raw: str | None) -> Any:
    if raw is None:
        return None
    if kind in ("INT64", "INTEGER"):
        return int(raw)
    if kind in ("FLOAT64", "FLOAT"):
        return float(raw)
    if kind in ("BOOL", "BOOLEAN"):
        return raw.lower() == "true"
    if kind in ("NUMERIC", "BIGNUMERIC"):
        return decimal.Decimal(raw)
    if kind == "DATE":
        return dt.date.fromisoformat(raw)
    if kind in ("TIMESTAMP", "DATETIME"):
        return dt.datetime.fromisoformat(raw.replace(" ", "T"))
    if kind == "BYTES":
        return base64.b64decode(raw)
    return raw


def field_schema(name: str, arrow_type: pa.DataType) -> dict[str, Any]:
    """BigQuery's schema field for an Arrow column type."""
    mode = "NULLABLE"
    if pa.types.is_list(arrow_type):
        mode, arrow_type = "REPEATED", arrow_type.value_type
    if pa.types.is_struct(arrow_type):
        return {
            "name": name,
            "type": "RECORD",
            "mode": mode,
            "fields": [field_schema(f.name, f.type) for f in arrow_type],
        }
    if pa.types.is_boolean(arrow_type):
        kind = "BOOLEAN"
    elif pa.types.is_integer(arrow_type):
        kind = "INTEGER"
    elif pa.types.is_floating(arrow_type):
        kind = "FLOAT"
    elif pa.types.is_decimal(arrow_type):
        kind = "NUMERIC" if arrow_type.precision <= 38 and arrow_type.scale <= 9 else "BIGNUMERIC"
    elif pa.types.is_date(arrow_type):
        kind = "DATE"
    elif pa.types.is_timestamp(arrow_type):
        kind = "TIMESTAMP" if arrow_type.tz else "DATETIME"
    elif pa.types.is_binary(arrow_type):
        kind = "BYTES"
    else:
        kind = "STRING"
    return {"name": name, "type": kind, "mode": mode}


def encode_value(value: Any, schema: dict[str, Any], int64_timestamps: bool) -> Any:
    """One cell in BigQuery's JSON row form (every scalar a string, NULL as null)."""
    if value is None:
        return None
    if schema["mode"] == "REPEATED":
        element = {**schema, "mode": "NULLABLE"}
        return [{"v": encode_value(item, element, int64_timestamps)} for item in value]
    kind = schema["type"]
    if kind == "RECORD":
        return {"f": [{"v": encode_value(value.get(f["name"]), f, int64_timestamps)} for f in schema["fields"]]}
    if kind == "BOOLEAN":
        return "true" if value else "false"
    if kind == "TIMESTAMP":
        micros = int(value.timestamp()) * 1_000_000 + value.microsecond
        return str(micros) if int64_timestamps else f"{micros / 1_000_000:.6f}"
    if kind == "DATETIME":
        return value.isoformat()
    if kind == "BYTES":
        return base64.b64encode(value).decode()
    return str(value)


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        status_name = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}.get(self.status, "UNKNOWN")
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
                "status": status_name,
            }
        }


class BigQueryServer:
    """Start with ``with BigQueryServer(tables_dir) as server:``; ``server.url`` is the endpoint."""

    def __init__(self, tables_dir: Path, *, project: str = "test-project", page_size: int = 1000) -> None:
        self.tables_dir = tables_dir
        self.project = project
        self.page_size = page_size
        self.jobs: dict[str, dict[str, Any]] = {}
        self.results: dict[str, pa.Table] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BigQueryServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                owner._handle(self, "GET")

            def do_POST(self) -> None:
                owner._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ HTTP

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}") if length else {}
        path = parsed.path.removeprefix("/bigquery/v2")
        with self._lock:
            self.requests.append((method, path))
        try:
            status, payload = 200, self._route(method, path, query, body)
        except ApiError as error:
            status, payload = error.status, error.body()
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        routes: list[tuple[str, str, Any]] = [
            ("POST", r"/projects/([^/]+)/jobs", self._insert_job),
            ("GET", r"/projects/([^/]+)/jobs/([^/]+)", self._get_job),
            ("GET", r"/projects/([^/]+)/queries/([^/]+)", self._get_query_results),
            ("GET", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)/data", self._list_rows),
            ("GET", r"/projects/([^/]+)/datasets/([^/]+)/tables/([^/]+)", self._get_table),
        ]
        for verb, pattern, action in routes:
            match = re.fullmatch(pattern, path)
            if verb == method and match:
                result: dict[str, Any] = action(*match.groups(), query=query, body=body)
                return result
        raise ApiError(404, "notFound", f"headrace test server: {method} {path} is not implemented")

    # ------------------------------------------------------------------ jobs

    def _run(self, sql: str, parameters: list[dict[str, Any]], dry_run: bool) -> tuple[pa.Table | None, int]:
        engine = LocalSql("bigquery", tables_dir=self.tables_dir)
        params = {p["name"]: decode_parameter(p) for p in parameters}
        try:
            if dry_run:
                return None, engine.prepare(sql, params).source_bytes
            table, prepared = engine.run(sql, params)
        except MissingTable as error:
            name = error.name if error.name.count(".") == 2 else f"{self.project}.{error.name}"
            project, rest = name.split(".", 1)
            raise ApiError(
                404, "notFound", f"Not found: Table {project}:{rest} was not found in location US"
            ) from error
        except SqlError as error:
            raise ApiError(400, "invalidQuery", bigquery_message(error, sql)) from error
        return table, prepared.source_bytes

    def _insert_job(self, project: str, *, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        config = body.get("configuration", {})
        if "query" not in config:
            raise ApiError(400, "invalid", "headrace test server: only query jobs are implemented")
        reference = body.get("jobReference") or {}
        job_id = reference.get("jobId") or uuid.uuid4().hex
        location = reference.get("location") or "US"
        dry_run = bool(config.get("dryRun"))
        sql = config["query"]["query"]
        table, scanned = self._run(sql, config["query"].get("queryParameters", []), dry_run)
        now = str(int(time.time() * 1000))
        job: dict[str, Any] = {
            "kind": "bigquery#job",
            "id": f"{project}:{location}.{job_id}",
            "jobReference": {"projectId": project, "jobId": job_id, "location": location},
            "configuration": config,
            "status": {"state": "DONE"},
            "statistics": {
                "creationTime": now,
                "startTime": now,
                "endTime": now,
                "totalBytesProcessed": str(scanned),
                "query": {
                    "totalBytesProcessed": str(scanned),
                    "totalBytesBilled": "0" if dry_run else str(max(scanned, 10 * 1024 * 1024)),
                    "cacheHit": False,
                    "statementType": "SELECT",
                },
            },
        }
        if table is not None:
            schema = {"fields": [field_schema(f.name, f.type) for f in table.schema]}
            job["statistics"]["query"]["schema"] = schema
            config["query"]["destinationTable"] = {
                "projectId": project,
                "datasetId": ANON_DATASET,
                "tableId": f"anon{job_id.replace('-', '_')}",
            }
            with self._lock:
                self.jobs[job_id] = job
                self.results[job_id] = table
        return job

    def _job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "notFound", f"Not found: Job {self.project}:US.{job_id}")
        return job

    def _get_job(self, project: str, job_id: str, *, query: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        return self._job(job_id)

    def _page(self, job_id: str, query: dict[str, str]) -> dict[str, Any]:
        table = self.results[job_id]
        job = self._job(job_id)
        schema = job["statistics"]["query"]["schema"]
        start = int(query.get("pageToken") or query.get("startIndex") or 0)
        size = min(int(query.get("maxResults", self.page_size)), self.page_size)
        rows = table.slice(start, size).to_pylist() if size else []
        int64_ts = query.get("formatOptions.useInt64Timestamp", "false").lower() == "true"
        page: dict[str, Any] = {
            "schema": schema,
            "totalRows": str(table.num_rows),
        }
        if rows:  # BigQuery leaves "rows" out of an empty page; the client relies on it
            page["rows"] = [
                {"f": [{"v": encode_value(row[f["name"]], f, int64_ts)} for f in schema["fields"]]} for row in rows
            ]
        if size and start + size < table.num_rows:
            page["pageToken"] = str(start + size)
        return page

    def _get_query_results(
        self, project: str, job_id: str, *, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        job = self._job(job_id)
        page = self._page(job_id, query)
        return {
            "kind": "bigquery#getQueryResultsResponse",
            "jobReference": job["jobReference"],
            "jobComplete": True,
            "cacheHit": False,
            "totalBytesProcessed": job["statistics"]["totalBytesProcessed"],
            **page,
        }

    def _anon_job(self, dataset: str, table_id: str) -> str:
        if dataset != ANON_DATASET:
            raise ApiError(404, "notFound", f"Not found: Table {self.project}:{dataset}.{table_id}")
        with self._lock:
            for job_id, job in self.jobs.items():
                if job["configuration"]["query"].get("destinationTable", {}).get("tableId") == table_id:
                    return job_id
        raise ApiError(404, "notFound", f"Not found: Table {self.project}:{dataset}.{table_id}")

    def _get_table(
        self, project: str, dataset: str, table_id: str, *, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        job_id = self._anon_job(dataset, table_id)
        job = self._job(job_id)
        return {
            "kind": "bigquery#table",
            "tableReference": {"projectId": project, "datasetId": dataset, "tableId": table_id},
            "schema": job["statistics"]["query"]["schema"],
            "numRows": str(self.results[job_id].num_rows),
            "type": "TABLE",
        }

    def _list_rows(
        self, project: str, dataset: str, table_id: str, *, query: dict[str, str], body: dict[str, Any]
    ) -> dict[str, Any]:
        page = self._page(self._anon_job(dataset, table_id), query)
        page.pop("schema")
        return {"kind": "bigquery#tableDataList", **page}


def bigquery_message(error: SqlError, sql: str) -> str:
    """The message BigQuery itself gives for this kind of failure, with its ``at [line:col]``."""
    line = error.line or 1
    column = 1
    if error.name and error.line:
        source_line = sql.splitlines()[error.line - 1]
        column = source_line.lower().find(error.name.lower()) + 1 or 1
    if error.kind == "column":
        return f"Unrecognized name: {error.name} at [{line}:{column}]"
    if error.kind == "parameter":
        return f"Query parameter '{error.name}' not found at [{line}:{column}]"
    if error.kind == "syntax":
        return f"Syntax error: {error.detail or error.message} at [{line}:{column}]"
    return f"{error.detail or error.message} at [{line}:{column}]"
