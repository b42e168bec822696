"""``s3://`` artifacts: the aws profile's side of :class:`~steps.storage.artifacts.ArtifactStore`.

What callers may rely on:

* **Nothing partial looks complete.** A single object appears only when its PUT (or its multipart
  upload's CompleteMultipartUpload) succeeds; s3transfer aborts a failed multipart upload. A folder
  is many objects, so it is complete only once its manifest ``<key>/_headrace_manifest.json`` (the
  list of files with sizes and SHA-256) is written, last. :meth:`S3Store.exists` and
  :meth:`S3Store.get_file` honour the manifest; a folder written by Spark/Glue counts as complete
  when its ``_SUCCESS`` marker exists.
* **Checksums.** Every upload asks S3 for SHA-256 checksums (``ChecksumAlgorithm``), so S3 rejects
  a part corrupted in transit. S3's checksum of a multipart object is a checksum of part checksums,
  not of the file, so the whole file's hex SHA-256 is also kept as object metadata (``sha256``),
  returned in :attr:`ArtifactRef.sha256` and verified by :meth:`get_file` after download. A
  folder's ``sha256`` is that of its manifest's ``path sha256`` lines (it changes with any file).
* **Large files** go up in parallel parts above ``multipart_threshold`` (boto3 ``TransferConfig``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from steps.core.contract import ArtifactRef
from steps.core.errors import ConfigError, NotFoundError, StepFailed
from steps.storage.aws import client_for, error_code, translate
from steps.storage.files import directory_size, sha256_of

MANIFEST = "_headrace_manifest.json"
SPARK_SUCCESS = "_SUCCESS"
MiB = 1024 * 1024


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` → ``("bucket", "a/b")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"artifact {uri}: not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


class S3Store:
    """Artifacts under ``s3://bucket/prefix``; keys are ``<pipeline>/<run_id>/<task>/<name>``."""

    def __init__(
        self,
        root: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        *,
        multipart_threshold: int = 64 * MiB,
        multipart_chunksize: int = 16 * MiB,
        max_concurrency: int = 8,
    ) -> None:
        self.bucket, prefix = split_uri(root)
        self.prefix = prefix.strip("/")
        self.root = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        self.max_concurrency = max_concurrency
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_for("s3", region=self.region, endpoint_url=self.endpoint_url)
        return self._client

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
        )

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.object_key(key)}"

    def _fail(self, error: Exception, what: str) -> Exception:
        code = error_code(error)
        if code in ("NoSuchBucket",):
            return ConfigError(
                f"{what}: bucket {self.bucket} does not exist; create it or fix artifact_root ({self.root})"
            )
        return translate(error, what)

    # ------------------------------------------------------------------ writes

    def _upload(self, local: Path, bucket: str, object_key: str, metadata: dict[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError
        from s3transfer.exceptions import S3UploadFailedError

        extra = {"ChecksumAlgorithm": "SHA256", "Metadata": metadata}
        try:
            self.client.upload_file(str(local), bucket, object_key, ExtraArgs=extra, Config=self._transfer_config())
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"upload to s3://{bucket}/{object_key}") from error
        except S3UploadFailedError as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, ClientError | BotoCoreError):
                raise self._fail(cause, f"upload to s3://{bucket}/{object_key}") from error
            raise StepFailed(f"upload to s3://{bucket}/{object_key} failed: {error}") from error

    @staticmethod
    def _metadata(sha256: str, rows: int | None, format: str) -> dict[str, str]:
        metadata = {"sha256": sha256, "format": format}
        if rows is not None:
            metadata["rows"] = str(rows)
        return metadata

    def put_file(self, local: Path, key: str, *, rows: int | None = None, format: str = "file") -> ArtifactRef:
        """Upload a file, or a folder (then its manifest, last); returns the reference with sizes."""
        if not local.exists():
            raise StepFailed(f"artifact {key}: the local path {local} does not exist")
        object_key = self.object_key(key)
        if local.is_dir():
            return self._put_dir(local, key, rows=rows, format="dir" if format == "file" else format)
        digest = sha256_of(local)
        self._upload(local, self.bucket, object_key, self._metadata(digest, rows, format))
        return ArtifactRef(self.uri_for(key), local.stat().st_size, rows, format, digest)

    def _put_dir(self, local: Path, key: str, *, rows: int | None, format: str) -> ArtifactRef:
        self.delete_prefix(key)  # a failed attempt's files must not mix with this one's
        files: list[dict[str, Any]] = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            digest = sha256_of(path)
            self._upload(path, self.bucket, f"{self.object_key(key)}/{relative}", self._metadata(digest, None, "file"))
            files.append({"path": relative, "bytes": path.stat().st_size, "sha256": digest})
        manifest = json.dumps({"files": files, "rows": rows, "format": format}, sort_keys=True).encode()
        self.put_object(f"{self.object_key(key)}/{MANIFEST}", manifest, self._metadata("", rows, format))
        listing = hashlib.sha256("\n".join(f"{f['path']} {f['sha256']}" for f in files).encode()).hexdigest()
        return ArtifactRef(self.uri_for(key), directory_size(local), rows, format, listing)

    def put_object(self, object_key: str, data: bytes, metadata: dict[str, str]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=object_key, Body=data, ChecksumAlgorithm="SHA256", Metadata=metadata
            )
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"upload to s3://{self.bucket}/{object_key}") from error

    def put_bytes(self, data: bytes, key: str, *, rows: int | None = None, format: str = "blob") -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        self.put_object(self.object_key(key), data, self._metadata(digest, rows, format))
        return ArtifactRef(self.uri_for(key), len(data), rows, format, digest)

    # ------------------------------------------------------------------ reads

    def _head(self, bucket: str, object_key: str) -> dict[str, Any] | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head: dict[str, Any] = self.client.head_object(Bucket=bucket, Key=object_key, ChecksumMode="ENABLED")
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(error, f"read s3://{bucket}/{object_key}") from error
        except BotoCoreError as error:
            raise self._fail(error, f"read s3://{bucket}/{object_key}") from error
        return head

    def head(self, uri: str) -> dict[str, Any] | None:
        """S3's HEAD response for one object (with its checksum), or ``None`` when absent."""
        bucket, object_key = split_uri(uri)
        return self._head(bucket, object_key)

    def keys_under(self, bucket: str, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"list s3://{bucket}/{prefix}") from error
        return keys

    def _manifest(self, bucket: str, object_key: str) -> dict[str, Any] | None:
        if self._head(bucket, f"{object_key}/{MANIFEST}") is None:
            return None
        data: dict[str, Any] = json.loads(self._read(bucket, f"{object_key}/{MANIFEST}"))
        return data

    def exists(self, uri: str) -> bool:
        """True for a complete object or a complete folder (manifest or Spark ``_SUCCESS`` present)."""
        bucket, object_key = split_uri(uri)
        object_key = object_key.rstrip("/")
        return any(
            self._head(bucket, candidate) is not None
            for candidate in (object_key, f"{object_key}/{MANIFEST}", f"{object_key}/{SPARK_SUCCESS}")
        )

    def _read(self, bucket: str, object_key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: bytes = self.client.get_object(Bucket=bucket, Key=object_key)["Body"].read()
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(
                    f"artifact s3://{bucket}/{object_key}: not found; was the task that writes it run?"
                ) from error
            raise self._fail(error, f"read s3://{bucket}/{object_key}") from error
        except BotoCoreError as error:
            raise self._fail(error, f"read s3://{bucket}/{object_key}") from error
        return body

    def read_bytes(self, uri: str) -> bytes:
        bucket, object_key = split_uri(uri)
        return self._read(bucket, object_key)

    def _download(self, bucket: str, object_key: str, local: Path, expected_sha256: str | None) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".partial-{local.name}")
        try:
            self.client.download_file(bucket, object_key, str(partial), Config=self._transfer_config())
        except (BotoCoreError, ClientError) as error:
            partial.unlink(missing_ok=True)
            if error_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise NotFoundError(
                    f"artifact s3://{bucket}/{object_key}: not found; was the task that writes it run?"
                ) from error
            raise self._fail(error, f"download s3://{bucket}/{object_key}") from error
        if expected_sha256 and sha256_of(partial) != expected_sha256:
            partial.unlink(missing_ok=True)
            raise StepFailed(f"artifact s3://{bucket}/{object_key}: SHA-256 mismatch after download; retry the task")
        os.replace(partial, local)

    def get_file(self, uri: str, local: Path) -> Path:
        """Download a file, or a complete folder (exactly the files its manifest lists), to ``local``."""
        bucket, object_key = split_uri(uri)
        object_key = object_key.rstrip("/")
        head = self._head(bucket, object_key)
        if head is not None:
            self._download(bucket, object_key, local, head.get("Metadata", {}).get("sha256"))
            return local
        manifest = self._manifest(bucket, object_key)
        if manifest is not None:
            for entry in manifest["files"]:
                self._download(bucket, f"{object_key}/{entry['path']}", local / entry["path"], entry["sha256"])
            local.mkdir(parents=True, exist_ok=True)
            return local
        if self._head(bucket, f"{object_key}/{SPARK_SUCCESS}") is not None:
            for key in self.keys_under(bucket, object_key + "/"):
                self._download(bucket, key, local / key[len(object_key) + 1 :], None)
            return local
        raise NotFoundError(f"artifact {uri}: not found (or its upload never completed); was the task run?")

    # ------------------------------------------------------------------ cleanup

    def delete_prefix(self, key: str) -> None:
        """Delete the object ``key`` and everything under ``key/`` (never ``key`` + other suffixes)."""
        from botocore.exceptions import BotoCoreError, ClientError

        object_key = self.object_key(key).rstrip("/")
        keys = [object_key] if self._head(self.bucket, object_key) is not None else []
        keys += self.keys_under(self.bucket, object_key + "/")
        try:
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except (BotoCoreError, ClientError) as error:
            raise self._fail(error, f"delete s3://{self.bucket}/{object_key}") from error
