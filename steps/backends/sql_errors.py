"""The error the local SQL engine refuses a query with: one line, with where and what.

Its own light module (no sqlglot, no DuckDB) so the engine, both dialects' rules and the backends
raise and catch the same class without importing each other.
"""

from __future__ import annotations

from steps.core.errors import UserError


class SqlError(UserError):
    """A query the local engine refused, with where (``line``) and what (``kind``, ``name``).

    ``kind`` is one of ``syntax``, ``unsupported``, ``table``, ``column``, ``parameter``,
    ``engine``; the BigQuery test server turns it into BigQuery's own error shape.
    """

    def __init__(self, message: str, *, kind: str, line: int | None = None, name: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.line = line
        self.name = name
        self.detail = detail

    def in_task(self, pipeline: str, task: str) -> SqlError:
        """The same error (same class and details) with the pipeline and task named first."""
        return type(self)(
            f"pipeline {pipeline}, task {task}: {self}",
            kind=self.kind,
            line=self.line,
            name=self.name,
            detail=self.detail,
        )
