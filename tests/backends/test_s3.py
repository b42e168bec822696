"""The artifact store suite, run against both sides: a local folder and S3 on a real moto server.

moto keeps objects, multipart uploads and SHA-256 checksums like S3 does; what it leaves uncovered
is S3's real consistency and throughput, KMS encryption and IAM policies.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from steps.core.errors import ConfigError, NotFoundError
from steps.runtime.values import Artifact, write_value
from steps.storage.artifacts import ArtifactStore, LocalStore, open_store
from steps.storage.s3 import MANIFEST, S3Store

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture(params=["local", "cloud"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    root: str = request.getfixturevalue("s3_root")
    endpoint: str = request.getfixturevalue("aws_env")
    return S3Store(root, region="us-east-1", endpoint_url=endpoint)


def test_file_round_trips_with_size_and_sha256(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights" * 1000)

    ref = store.put_file(source, "demo/r1/train/model.bin", format="model")

    assert ref.uri == store.uri_for("demo/r1/train/model.bin")
    assert ref.bytes == 7000
    assert ref.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.exists(ref.uri)
    assert store.read_bytes(ref.uri) == source.read_bytes()
    copy = store.get_file(ref.uri, tmp_path / "copy" / "model.bin")
    assert copy.read_bytes() == source.read_bytes()


def test_folder_round_trips_with_every_file(store: ArtifactStore, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    (folder / "part").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "part" / "b.txt").write_text("bb")

    ref = store.put_file(folder, "demo/r1/score/out", rows=3)

    assert (ref.bytes, ref.rows, ref.format) == (3, 3, "dir")
    assert store.exists(ref.uri)
    copy = store.get_file(ref.uri, tmp_path / "copy")
    assert (copy / "a.txt").read_text() == "a"
    assert (copy / "part" / "b.txt").read_text() == "bb"
    assert not (copy / MANIFEST).exists()


def test_table_output_records_rows_and_reads_back(store: ArtifactStore) -> None:
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})

    ref = write_value(store, "demo/r1/extract/result", table)

    assert ref.uri.endswith("/demo/r1/extract/result.parquet")
    assert (ref.rows, ref.format) == (3, "parquet")
    assert Artifact(ref, store).read_arrow().equals(table)


def test_delete_prefix_removes_the_key_and_below_but_not_siblings(store: ArtifactStore) -> None:
    store.put_bytes(b"1", "demo/r1/t/out/x.bin")
    store.put_bytes(b"2", "demo/r1/t/out/deeper/y.bin")
    single = store.put_bytes(b"3", "demo/r1/t/single")
    sibling = store.put_bytes(b"4", "demo/r1/t/out2")

    store.delete_prefix("demo/r1/t/out")
    store.delete_prefix("demo/r1/t/single")

    assert not store.exists(store.uri_for("demo/r1/t/out/x.bin"))
    assert not store.exists(store.uri_for("demo/r1/t/out/deeper/y.bin"))
    assert not store.exists(single.uri)
    assert store.exists(sibling.uri)


def test_reading_a_missing_artifact_says_which_and_what_to_do(store: ArtifactStore, tmp_path: Path) -> None:
    uri = store.uri_for("demo/r1/t/never.bin")
    with pytest.raises(NotFoundError, match=r"never\.bin: not found.*was the task"):
        store.read_bytes(uri)
    with pytest.raises(NotFoundError, match=r"never\.bin"):
        store.get_file(uri, tmp_path / "x")


def test_large_file_goes_up_in_parts_with_sha256_checksums(s3_root: str, aws_env: str, tmp_path: Path) -> None:
    store = S3Store(
        s3_root, region="us-east-1", endpoint_url=aws_env, multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB
    )
    source = tmp_path / "big.bin"
    source.write_bytes(bytes(range(256)) * (12 * MiB // 256))

    ref = store.put_file(source, "demo/r1/t/big.bin")

    head = store.head(ref.uri)
    assert head is not None
    bucket, key = ref.uri.removeprefix("s3://").split("/", 1)
    first_part = store.client.head_object(Bucket=bucket, Key=key, PartNumber=1)
    assert first_part["PartsCount"] == 3
    # S3 keeps a checksum of the part checksums here (moto a plain one): either way one exists.
    assert head["ChecksumSHA256"]
    assert head["Metadata"]["sha256"] == ref.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    copy = store.get_file(ref.uri, tmp_path / "copy.bin")
    assert copy.read_bytes() == source.read_bytes()


def test_small_file_carries_s3_sha256_checksum_of_its_bytes(s3_root: str, aws_env: str, tmp_path: Path) -> None:
    import base64

    store = S3Store(s3_root, region="us-east-1", endpoint_url=aws_env)
    ref = store.put_bytes(b"hello", "demo/r1/t/hello.bin")

    head = store.head(ref.uri)
    assert head is not None
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == ref.sha256 == hashlib.sha256(b"hello").hexdigest()


def test_folder_without_manifest_is_not_complete(s3_root: str, aws_env: str, tmp_path: Path) -> None:
    store = S3Store(s3_root, region="us-east-1", endpoint_url=aws_env)
    store.put_bytes(b"half", "demo/r1/t/out/part-0.parquet")  # a crashed folder upload: no manifest

    assert not store.exists(store.uri_for("demo/r1/t/out"))
    with pytest.raises(NotFoundError, match="never completed"):
        store.get_file(store.uri_for("demo/r1/t/out"), tmp_path / "out")


def test_rewriting_a_folder_drops_files_of_the_failed_attempt(s3_root: str, aws_env: str, tmp_path: Path) -> None:
    store = S3Store(s3_root, region="us-east-1", endpoint_url=aws_env)
    store.put_bytes(b"stale", "demo/r1/t/out/stale.txt")
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "fresh.txt").write_text("fresh")

    ref = store.put_file(folder, "demo/r1/t/out")

    copy = store.get_file(ref.uri, tmp_path / "copy")
    assert sorted(p.name for p in copy.iterdir()) == ["fresh.txt"]
    assert not store.exists(store.uri_for("demo/r1/t/out/stale.txt"))


def test_missing_bucket_names_it_and_the_setting(aws_env: str) -> None:
    store = S3Store("s3://no-such-bucket/x", region="us-east-1", endpoint_url=aws_env)
    with pytest.raises(ConfigError, match=r"bucket no-such-bucket does not exist.*artifact_root"):
        store.put_bytes(b"x", "k")


def test_open_store_treats_an_empty_endpoint_as_aws_itself() -> None:
    store = open_store("s3://bucket/prefix", region="eu-west-1", endpoint_url="")
    assert isinstance(store, S3Store)
    assert store.endpoint_url is None
    assert store.uri_for("p/r/t/o.json") == "s3://bucket/prefix/p/r/t/o.json"


def test_folder_written_by_spark_counts_once_its_success_marker_exists(
    s3_root: str, aws_env: str, tmp_path: Path
) -> None:
    store = S3Store(s3_root, region="us-east-1", endpoint_url=aws_env)
    store.put_bytes(b"p0", "demo/r1/glue/out/part-0.parquet")
    assert not store.exists(store.uri_for("demo/r1/glue/out"))

    store.put_bytes(b"", "demo/r1/glue/out/_SUCCESS")

    assert store.exists(store.uri_for("demo/r1/glue/out"))
    copy = store.get_file(store.uri_for("demo/r1/glue/out"), tmp_path / "out")
    assert (copy / "part-0.parquet").read_bytes() == b"p0"


def test_unfinished_multipart_upload_is_invisible(s3_root: str, aws_env: str) -> None:
    store = S3Store(s3_root, region="us-east-1", endpoint_url=aws_env)
    key = store.object_key("demo/r1/t/big.bin")
    upload = store.client.create_multipart_upload(Bucket=store.bucket, Key=key, ChecksumAlgorithm="SHA256")
    store.client.upload_part(
        Bucket=store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * (5 * MiB)
    )

    assert not store.exists(store.uri_for("demo/r1/t/big.bin"))
