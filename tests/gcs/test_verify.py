"""`registrar verify` compares a published artifact with what was validated (the record and the
manifest's digests of the validated bytes), never with itself: against fake-gcs-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.cli.verify import verify
from handlers.gcs import publish
from handlers.gcs.objects import ObjectStore
from handlers.intake.uploads import Upload
from handlers.settings import Settings
from tests.conftest import Bucket, function_env


@pytest.fixture
def settings(services) -> Settings:
    return Settings.from_env(function_env(services))


@pytest.fixture
def published(settings: Settings, bucket: Bucket, tmp_path: Path):
    store = ObjectStore(settings)
    bucket.upload_bytes(b"the validated .keras bytes", "models/m/v1/model.keras")
    info = store.get_object(bucket.name, "models/m/v1/model.keras")
    assert info is not None
    seen = store.download(info, tmp_path / "model.keras")
    export = tmp_path / "saved_model"
    (export / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "fingerprint.pb", "variables/variables.index"):
        (export / name).write_bytes(f"exported {name}".encode())
    upload = Upload("keras", bucket.name, info.name, (info,), None)  # type: ignore[arg-type]
    result = publish.publish(
        upload.source,
        store=store,
        directory="registered/m/sha256-abc/",
        digest=seen.sha256,
        validated={"model.keras": seen},
        exported_dir=export,
    )
    record = {
        "kind": "keras",
        "artifact_uri": result.artifact_uri,
        "artifact_files": result.manifest,
        "digest": f"sha256:{seen.sha256}",
        "members": {"model.keras": info.generation},
    }
    return store, result, record, seen


def _verify(settings: Settings, store: ObjectStore, result, record, label: str | None = None):
    return verify(
        store,
        settings,
        version="m@1",
        artifact_uri=result.artifact_uri,
        record=record,
        label_digest=label,
    )


def test_an_intact_artifact_matches_what_was_validated(settings, bucket: Bucket, published):
    store, result, record, seen = published
    manifest = bucket.read_json("registered/m/sha256-abc/" + publish.MANIFEST_NAME)
    assert manifest["validated"]["model.keras"]["crc32c"] == seen.crc32c
    assert manifest["crc32c"]["model.keras"] == seen.crc32c
    checked = _verify(settings, store, result, record, seen.sha256[:40])
    assert checked.ok, checked.problems
    assert checked.files_checked == 4


def test_a_replaced_file_is_modified(settings, bucket: Bucket, published):
    store, result, record, _ = published
    bucket.upload_bytes(b"something else", "registered/m/sha256-abc/saved_model.pb")
    checked = _verify(settings, store, result, record)
    assert ("modified", "saved_model.pb") in {(p.kind, p.path) for p in checked.problems}


def test_a_manifest_whose_validated_digests_disagree_with_the_record_is_reported(
    settings, bucket: Bucket, published
):
    """The record (under STATE_PREFIX) is the witness: a manifest that lists other validated
    bytes for the source does not make the artifact pass."""
    store, result, record, _ = published
    name = "registered/m/sha256-abc/" + publish.MANIFEST_NAME
    manifest = bucket.read_json(name)
    manifest["validated"]["model.keras"]["sha256"] = "0" * 64
    manifest["crc32c"]["saved_model.pb"] = "AAAAAA=="
    bucket.upload_bytes(json.dumps(manifest).encode(), name)
    checked = _verify(settings, store, result, record)
    found = {(p.kind, p.path) for p in checked.problems}
    assert ("metadata", "model.keras") in found  # validated digest != recorded file digest
    assert ("metadata", "saved_model.pb") in found  # the manifest's crc32c != the bytes'
    assert not checked.ok
