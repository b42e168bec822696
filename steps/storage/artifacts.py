"""Artifact stores: where task outputs live. ``file://`` locally, ``s3://`` on the aws profile.

Both stores share one interface so step code never knows which side it runs on. Every write
returns an :class:`~steps.core.contract.ArtifactRef` with its size in bytes (and rows, where the caller
knows them): the control room sizes the next task from these numbers.

Writes are atomic: a file appears under its final key only once it is complete, so a killed task
never leaves a partial output that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, NotFoundError
from steps.storage.files import directory_size, sha256_of


class ArtifactStore(Protocol):
    """The one interface for task outputs, whichever side stores them."""

    root: str

    def uri_for(self, key: str) -> str:
        """The URI a key would have; keys are ``<pipeline>/<run_id>/<task>/<name>``."""
        ...

    def put_file(self, local: Path, key: str, *, rows: int | None = None, format: str = "file") -> ArtifactRef:
        """Store a local file (or a folder, recursively) under ``key``."""
        ...

    def put_bytes(self, data: bytes, key: str, *, rows: int | None = None, format: str = "blob") -> ArtifactRef: ...

    def get_file(self, uri: str, local: Path) -> Path:
        """Copy the artifact at ``uri`` (file or folder) to ``local`` and return that path."""
        ...

    def read_bytes(self, uri: str) -> bytes: ...

    def exists(self, uri: str) -> bool: ...

    def delete_prefix(self, key: str) -> None:
        """Remove everything under ``key`` (used to clear a failed attempt's partial output)."""
        ...


class LocalStore:
    """``file://`` artifacts in a folder: the embedded default, and S3 stand-in on one laptop."""

    def __init__(self, root: str | Path) -> None:
        self.path = Path(str(root).removeprefix("file://")).resolve()
        self.root = self.path.as_uri()

    def uri_for(self, key: str) -> str:
        return (self.path / key).as_uri()

    def local_path(self, uri: str) -> Path:
        parsed = urlparse(uri)
        if parsed.scheme not in ("file", ""):
            raise ConfigError(f"artifact {uri}: not a file:// URI; this run uses a local artifact store")
        return Path(parsed.path if parsed.scheme else uri)

    def put_file(self, local: Path, key: str, *, rows: int | None = None, format: str = "file") -> ArtifactRef:
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        if local.is_dir():
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
            shutil.rmtree(staging)
            shutil.copytree(local, staging)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
            return ArtifactRef(target.as_uri(), directory_size(target), rows, "dir" if format == "file" else format)
        staging_file = target.with_name(f".partial-{target.name}")
        if local.resolve() != staging_file.resolve():
            shutil.copyfile(local, staging_file)
        os.replace(staging_file, target)
        return ArtifactRef(target.as_uri(), target.stat().st_size, rows, format, sha256_of(target))

    def put_bytes(self, data: bytes, key: str, *, rows: int | None = None, format: str = "blob") -> ArtifactRef:
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".partial-{target.name}")
        staging.write_bytes(data)
        os.replace(staging, target)
        return ArtifactRef(target.as_uri(), len(data), rows, format, hashlib.sha256(data).hexdigest())

    def get_file(self, uri: str, local: Path) -> Path:
        source = self.local_path(uri)
        if not source.exists():
            raise NotFoundError(f"artifact {uri}: not found; was the task that writes it run?")
        local.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, local, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, local)
        return local

    def read_bytes(self, uri: str) -> bytes:
        source = self.local_path(uri)
        if not source.is_file():
            raise NotFoundError(f"artifact {uri}: not found; was the task that writes it run?")
        return source.read_bytes()

    def exists(self, uri: str) -> bool:
        return self.local_path(uri).exists()

    def delete_prefix(self, key: str) -> None:
        target = self.path / key
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def open_store(root: str, *, region: str = "us-east-1", endpoint_url: str = "") -> ArtifactStore:
    """The store for an artifact root: ``s3://bucket/prefix`` or a local folder / ``file://`` URI."""
    if root.startswith("s3://"):
        from steps.storage.s3 import S3Store  # boto3 is only imported where S3 is used

        store: ArtifactStore = S3Store(root, region=region, endpoint_url=endpoint_url or None)
        return store
    if "://" in root and not root.startswith("file://"):
        raise ConfigError(f"artifact_root: {root!r} has an unknown scheme; use s3://bucket/prefix or a folder")
    return LocalStore(root)


def store_for_uri(uri: str, *, region: str = "us-east-1", endpoint_url: str = "") -> ArtifactStore:
    """A store able to read ``uri``, whatever root wrote it."""
    if uri.startswith("s3://"):
        bucket = urlparse(uri).netloc
        return open_store(f"s3://{bucket}", region=region, endpoint_url=endpoint_url)
    return LocalStore("/")
