"""publish: the copy and the export uploads run concurrently, yet the manifest is still written
last, only after every file is in place, and a polluted directory or a failed call still stops
it (against an in-memory store with a delay per call, so overlap is observable)."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from handlers.errors import TransientError
from handlers.gcs import publish
from handlers.gcs.objects import DigestMismatch, Digests, ObjectInfo, PreconditionFailed
from handlers.intake.uploads import Upload

_DELAY = 0.05


def _crc(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


class SlowStore:
    """Create-only objects in a dict; every call sleeps, and the calls in flight are counted."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.log: list[tuple[str, str, float, float]] = []
        self.fail: set[str] = set()
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def _call(self, verb: str, name: str, action: Any) -> Any:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        begun = time.monotonic()
        try:
            time.sleep(_DELAY)
            if name in self.fail:
                raise TransientError(f"{verb} {name} failed")
            return action()
        finally:
            with self._lock:
                self._active -= 1
                self.log.append((verb, name, begun, time.monotonic()))

    def _create(self, name: str, data: bytes) -> ObjectInfo:
        with self._lock:
            if name in self.objects:
                raise PreconditionFailed(name)
            self.objects[name] = data
        return ObjectInfo("b", name, 1, len(data), _crc(data))

    def list_objects(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        def listing() -> list[ObjectInfo]:
            return [
                ObjectInfo(bucket, n, 1, len(d), _crc(d))
                for n, d in sorted(self.objects.items())
                if n.startswith(prefix)
            ]

        return self._call("list", prefix, listing)

    def read_bytes(self, bucket: str, name: str) -> tuple[bytes, int] | None:
        return self._call(
            "read", name, lambda: (self.objects[name], 1) if name in self.objects else None
        )

    def copy_object(self, source: ObjectInfo, destination_name: str) -> ObjectInfo:
        return self._call(
            "copy",
            destination_name,
            lambda: self._create(destination_name, self.objects[source.name]),
        )

    def upload_file(self, source: Path, bucket: str, name: str) -> ObjectInfo:
        return self._call("upload", name, lambda: self._create(name, source.read_bytes()))

    def write_bytes(self, bucket: str, name: str, data: bytes, **_: Any) -> int:
        return self._call("write", name, lambda: self._create(name, data).generation)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[SlowStore, Upload, Path]:
    store = SlowStore()
    store.objects["models/m/model.keras"] = b"keras bytes"
    member = ObjectInfo("b", "models/m/model.keras", 7, 11, _crc(b"keras bytes"))
    upload = Upload("keras", "b", "models/m/model.keras", (member,), None)  # type: ignore[arg-type]
    export = tmp_path / "saved_model"
    (export / "variables").mkdir(parents=True)
    for name in ("saved_model.pb", "fingerprint.pb", "variables/variables.index"):
        (export / name).write_bytes(name.encode())
    (export / "variables" / "variables.data-00000-of-00001").write_bytes(b"w" * 1000)
    return store, upload, export


def _publish(
    store: SlowStore, upload: Upload, export: Path, directory: str = "registered/m/sha256-abc/"
) -> publish.Published:
    return publish.publish(
        upload.source,
        store=store,  # type: ignore[arg-type]
        directory=directory,
        digest="abc",
        validated={"model.keras": Digests("k" * 64, _crc(b"keras bytes"), "md5", 11)},
        exported_dir=export,
    )


def test_files_are_placed_concurrently_and_the_manifest_last(setup):
    store, upload, export = setup
    published = _publish(store, upload, export)
    assert published.artifact_uri == "gs://b/registered/m/sha256-abc/"
    assert sorted(published.manifest) == [
        "fingerprint.pb",
        "model.keras",
        "saved_model.pb",
        "variables/variables.data-00000-of-00001",
        "variables/variables.index",
    ]
    assert store.max_active >= 3  # sequential calls (before) never overlapped: 1
    manifest = [e for e in store.log if e[1].endswith(publish.MANIFEST_NAME) and e[0] == "write"]
    placed = [e for e in store.log if e[0] in ("copy", "upload")]
    assert len(manifest) == 1 and len(placed) == 5
    assert manifest[0][2] >= max(end for *_, end in placed)  # written after every file landed
    written = json.loads(store.objects["registered/m/sha256-abc/" + publish.MANIFEST_NAME])
    assert written["files"] == published.manifest and written["members"] == {"model.keras": 7}
    assert written["crc32c"]["model.keras"] == _crc(b"keras bytes")
    assert written["crc32c"]["saved_model.pb"] == _crc(b"saved_model.pb")
    assert written["validated"]["model.keras"] == {
        "generation": 7,
        "sha256": "k" * 64,
        "crc32c": _crc(b"keras bytes"),
        "md5": "md5",
        "size": 11,
    }


def test_a_copy_that_is_not_the_validated_bytes_stops_publishing(setup):
    store, upload, export = setup
    store.objects["models/m/model.keras"] = b"other bytes"  # what the server-side copy reads
    with pytest.raises(DigestMismatch) as err:
        _publish(store, upload, export)
    assert err.value.code == "upload.digest_mismatch"
    assert "validated bytes" in str(err.value)
    assert not any(n.endswith(publish.MANIFEST_NAME) for n in store.objects)


def test_a_failed_call_stops_publishing_after_the_others_finish(setup):
    store, upload, export = setup
    store.fail.add("registered/m/sha256-abc/variables/variables.index")
    with pytest.raises(TransientError, match=r"variables\.index"):
        _publish(store, upload, export)
    assert not any(n.endswith(publish.MANIFEST_NAME) for n in store.objects)
    with store._lock:
        assert store._active == 0  # nothing still running behind the raised error


def test_a_polluted_directory_moves_to_a_fresh_sibling(setup):
    store, upload, export = setup
    store.objects["registered/m/sha256-abc/saved_model.pb"] = b"from a crashed export"
    published = _publish(store, upload, export)
    assert published.artifact_uri.startswith("gs://b/registered/m/sha256-abc-")
    sibling = published.artifact_uri.removeprefix("gs://b/")
    assert store.objects[sibling + "saved_model.pb"] == b"saved_model.pb"


def test_an_existing_manifest_for_the_same_digest_is_reused(setup):
    store, upload, export = setup
    first = _publish(store, upload, export)
    calls = len(store.log)
    again = _publish(store, upload, export)
    assert again == first
    assert not [e for e in store.log[calls:] if e[0] in ("copy", "upload", "write")]


# ---- TF Serving's numbered layout (the default serving image) ------------------------------------


def test_numbered_layout_places_everything_in_version_1_and_registers_its_parent(setup):
    store, upload, export = setup
    digest = "ab" * 32
    flat = publish.artifact_dir("registered/", "m", digest)
    numbered = publish.artifact_dir("registered/", "m", digest, numbered=True)
    assert flat == f"registered/m/sha256-{digest[:32]}/"
    assert numbered == f"registered/m/tfs-sha256-{digest[:32]}/1/"  # never nested in the flat one
    published = _publish(store, upload, export, directory=numbered)
    assert published.artifact_uri == f"gs://b/registered/m/tfs-sha256-{digest[:32]}/"
    assert all(n.startswith(numbered) for n in store.objects if n.startswith("registered/"))
    assert numbered + "saved_model.pb" in store.objects
    assert numbered + publish.MANIFEST_NAME in store.objects
    assert publish.same_content(published.artifact_uri, f"gs://b/{flat}")
    assert not publish.same_content(
        published.artifact_uri, "gs://b/registered/m/sha256-" + "c" * 32
    )


def test_a_polluted_numbered_directory_moves_to_a_fresh_numbered_sibling(setup):
    store, upload, export = setup
    numbered = "registered/m/tfs-sha256-abc/1/"
    store.objects[numbered + "saved_model.pb"] = b"from a crashed export"
    published = _publish(store, upload, export, directory=numbered)
    base = published.artifact_uri.removeprefix("gs://b/")
    assert base.startswith("registered/m/tfs-sha256-abc-") and base.endswith("/")
    assert store.objects[base + "1/saved_model.pb"] == b"saved_model.pb"  # still version 1
