"""Turning a step's return value into a stored artifact, and a stored artifact back into an input.

A step may return a pandas DataFrame or Arrow table (stored as Parquet, rows counted), a path
(a file or folder, copied as is), bytes, an :class:`ArtifactRef` a backend already wrote (a
SageMaker model, a Glue output), or any JSON value. pandas and pyarrow are imported only when such
a value is actually met, so trivial steps start fast.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import tempfile
import uuid
from pathlib import Path, PurePath
from typing import Any

from steps.core.contract import ArtifactRef
from steps.core.errors import StepFailed, UserError
from steps.storage.artifacts import ArtifactStore, LocalStore


class UnstorableValue(UserError):
    """A step returned something that is no JSON, table, bytes or path: storing its ``str()``
    would hand the next task text it never asked for, so the task fails and says what it got."""


def _json_default(value: Any) -> Any:
    """The JSON form of values that have one beyond JSON's own types (dates, decimals, numpy)."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if _module_of(value) == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(type(value).__name__)


def _kind(value: Any, error: Exception) -> str:
    """What was returned, or (inside a list or dict) what in it could not be stored."""
    inner = str(error)
    if isinstance(value, list | tuple | dict) and inner.isidentifier():
        return f"{type(value).__name__} holding a {inner}"
    return type(value).__name__


def _module_of(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def write_value(store: ArtifactStore, key: str, value: Any) -> ArtifactRef:
    """Store ``value`` under ``key`` (plus a format suffix) and return its reference."""
    if isinstance(value, ArtifactRef):
        return value
    if isinstance(value, Artifact):
        return value.ref
    if _module_of(value) in ("pandas", "pyarrow"):
        return _write_table(store, key, value)
    if isinstance(value, Path):
        if not value.exists():
            raise StepFailed(f"output {key}: the step returned the path {value}, which does not exist")
        return store.put_file(
            value, key + ("" if value.is_dir() else value.suffix), format="dir" if value.is_dir() else "file"
        )
    if isinstance(value, bytes | bytearray):
        return store.put_bytes(bytes(value), key + ".bin")
    try:
        data = json.dumps(value, sort_keys=True, default=_json_default).encode()
    except (TypeError, ValueError) as error:
        raise UnstorableValue(
            f"output {key.rsplit('/', 1)[-1]} is a {_kind(value, error)}, which headrace cannot store; return "
            "JSON (dict, list, str, number, bool), a pandas DataFrame, an Arrow table, bytes or a Path"
        ) from None
    rows = len(value) if isinstance(value, list | dict) else None
    return store.put_bytes(data, key + ".json", rows=rows, format="json")


def _write_table(store: ArtifactStore, key: str, value: Any) -> ArtifactRef:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = value if isinstance(value, pa.Table) else pa.Table.from_pandas(value, preserve_index=False)
    if isinstance(store, LocalStore):
        target = store.path / f"{key}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".partial-{target.name}")
        pq.write_table(table, staging)
        return store.put_file(staging, f"{key}.parquet", rows=table.num_rows, format="parquet")
    with tempfile.TemporaryDirectory(prefix="headrace-") as tmp:
        local = Path(tmp) / "data.parquet"
        pq.write_table(table, local)
        return store.put_file(local, f"{key}.parquet", rows=table.num_rows, format="parquet")


class Artifact:
    """An upstream task's output as a step receives it: its reference plus ways to read it."""

    def __init__(self, ref: ArtifactRef, store: ArtifactStore) -> None:
        self.ref = ref
        self._store = store
        self._local: Path | None = None

    def __repr__(self) -> str:
        return f"Artifact({self.ref.uri!r}, bytes={self.ref.bytes}, rows={self.ref.rows})"

    @property
    def uri(self) -> str:
        return self.ref.uri

    @property
    def bytes(self) -> int:
        return self.ref.bytes

    @property
    def rows(self) -> int | None:
        return self.ref.rows

    @property
    def format(self) -> str:
        return self.ref.format

    def local_path(self) -> Path:
        """A local path to the artifact; downloaded once where it lives remotely."""
        if self._local is None:
            if isinstance(self._store, LocalStore):
                self._local = self._store.local_path(self.uri)
            else:
                name = self.uri.rstrip("/").rsplit("/", 1)[-1]
                self._local = self._store.get_file(self.uri, Path(tempfile.mkdtemp(prefix="headrace-in-")) / name)
        return self._local

    def read_arrow(self) -> Any:
        import pyarrow.parquet as pq

        return pq.read_table(self.local_path())

    def read_pandas(self) -> Any:
        return self.read_arrow().to_pandas()

    def read_json(self) -> Any:
        return json.loads(self._store.read_bytes(self.uri))

    def read(self) -> Any:
        """The natural Python value: a DataFrame for Parquet, the value for JSON, else a path."""
        if self.format == "parquet":
            return self.read_pandas()
        if self.format == "json":
            return self.read_json()
        return self.local_path()
