"""ObjectStore against fake-gcs-server: downloads are hashed and held to the object's metadata,
files are created without following or overwriting anything, copies are pinned to a generation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from pathlib import Path

import google_crc32c
import pytest

from handlers.errors import Superseded
from handlers.gcs.objects import DigestMismatch, ObjectStore
from handlers.settings import Settings
from tests.conftest import Bucket, function_env


@pytest.fixture
def store(services) -> ObjectStore:
    return ObjectStore(Settings.from_env(function_env(services)))


def _crc(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def test_a_download_reports_the_digests_gcs_has(store, bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    bucket.upload_bytes(data, "models/x/blob.bin")
    info = store.get_object(bucket.name, "models/x/blob.bin")
    assert info is not None and info.crc32c and info.md5_hash
    seen = store.download(info, tmp_path / "blob.bin")
    assert seen.sha256 == hashlib.sha256(data).hexdigest()
    assert seen.crc32c == info.crc32c == _crc(data)
    assert seen.md5 == info.md5_hash
    assert seen.size == info.size == len(data)
    assert (tmp_path / "blob.bin").read_bytes() == data


@pytest.mark.parametrize(
    "doctor",
    [
        {"crc32c": "AAAAAA=="},
        {"md5_hash": base64.b64encode(b"\0" * 16).decode()},
        {"size": 299_999},  # fewer bytes announced than arrive: stopped while streaming
        {"size": 300_001},
    ],
)
def test_bytes_that_differ_from_the_listed_metadata_are_a_rejection(
    store, bucket: Bucket, tmp_path: Path, doctor: dict
) -> None:
    bucket.upload_bytes(os.urandom(300_000), "models/x/blob.bin")
    info = store.get_object(bucket.name, "models/x/blob.bin")
    assert info is not None
    with pytest.raises(DigestMismatch) as err:
        store.download(dataclasses.replace(info, **doctor), tmp_path / "blob.bin")
    assert err.value.code == "upload.digest_mismatch"


def test_a_download_never_overwrites_or_follows_an_existing_path(
    store, bucket: Bucket, tmp_path: Path
) -> None:
    bucket.upload_bytes(b"payload", "models/x/blob.bin")
    info = store.get_object(bucket.name, "models/x/blob.bin")
    assert info is not None
    (tmp_path / "existing").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        store.download(info, tmp_path / "existing")
    assert (tmp_path / "existing").read_bytes() == b"keep"
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        store.download(info, tmp_path / "link")
    assert not (tmp_path / "elsewhere").exists()


def test_a_copy_is_pinned_to_the_validated_generation(store, bucket: Bucket) -> None:
    first, second = b"validated bytes", b"overwritten later"
    bucket.upload_bytes(first, "models/x/model.keras")
    validated = store.get_object(bucket.name, "models/x/model.keras")
    assert validated is not None
    bucket.upload_bytes(second, "models/x/model.keras")  # a newer generation is live now
    copied = store.copy_object(validated, "registered/x/model.keras")
    assert copied.crc32c == validated.crc32c == _crc(first)
    assert bucket.handle.blob("registered/x/model.keras").download_as_bytes() == first


def test_a_copy_of_a_vanished_generation_is_superseded(store, bucket: Bucket) -> None:
    """fake-gcs-server keeps serving a deleted generation, so a generation that never existed
    stands in for one deleted by lifecycle rules: GCS answers both with 404."""
    bucket.upload_bytes(b"validated", "models/x/model.keras")
    info = store.get_object(bucket.name, "models/x/model.keras")
    assert info is not None
    with pytest.raises(Superseded):
        store.copy_object(
            dataclasses.replace(info, generation=info.generation + 1), "registered/x/model.keras"
        )
    assert bucket.names("registered/") == []
