"""intake.download against fake-gcs-server: `fetch_then_hash` gives the same digests as hashing on
the way in, holds the bytes it hashes to the ones downloaded, and stops when told."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handlers.gcs.objects import DigestMismatch, Interrupted, ObjectStore
from handlers.intake import download
from handlers.intake.download import Hashing, fetch, fetch_then_hash
from handlers.settings import Settings
from tests.conftest import Bucket, function_env


@pytest.fixture
def store(services) -> ObjectStore:
    return ObjectStore(Settings.from_env(function_env(services)))


def _upload(store: ObjectStore, bucket: Bucket, files: dict[str, bytes], prefix: str) -> dict:
    pinned = {}
    for relative, data in files.items():
        bucket.upload_bytes(data, prefix + relative)
        info = store.get_object(bucket.name, prefix + relative)
        assert info is not None
        pinned[relative] = info
    return pinned


FILES = {
    "saved_model.pb": os.urandom(40_000),
    "variables/variables.index": os.urandom(300),
    "variables/variables.data-00000-of-00001": os.urandom(3 * (1 << 20) + 17),
}


def test_hashing_later_gives_the_digests_of_hashing_on_the_way(
    store, bucket: Bucket, tmp_path: Path
) -> None:
    pinned = _upload(store, bucket, FILES, "models/h/later/")
    inline = fetch(store, pinned, tmp_path / "inline", "gs://x")
    hashing = fetch_then_hash(store, pinned, tmp_path / "later", "gs://x")
    later = hashing.result()
    hashing.close()
    assert later == inline
    for relative, data in FILES.items():
        assert later[relative].sha256 == hashlib.sha256(data).hexdigest()
        assert (tmp_path / "later" / relative).read_bytes() == data


def _before_each_file(monkeypatch: pytest.MonkeyPatch, hook: Callable[[Any], object]) -> None:
    """Run `hook(stop)` in the hashing thread before it reads each file."""
    original = download.file_digests

    def digests(path: Path, stop: threading.Event | None = None) -> tuple[str, str]:
        hook(stop)
        return original(path, stop)

    monkeypatch.setattr(download, "file_digests", digests)


def test_a_file_changed_before_it_is_hashed_is_a_digest_mismatch(
    store, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = _upload(store, bucket, FILES, "models/h/changed/")
    gate = threading.Event()
    # what a writer can do between the download and the hash pass
    _before_each_file(monkeypatch, lambda stop: gate.wait(10))
    hashing = fetch_then_hash(store, pinned, tmp_path / "d", "gs://x")
    with (tmp_path / "d" / "variables/variables.data-00000-of-00001").open("r+b") as handle:
        handle.write(b"\0")
    gate.set()
    with pytest.raises(DigestMismatch) as err:
        hashing.result()
    assert err.value.code == "upload.digest_mismatch"
    assert "changed after its download" in str(err.value)


def test_close_stops_the_pass_before_the_files_go(
    store, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = _upload(store, bucket, FILES, "models/h/closed/")
    started = threading.Event()
    # closed while the first file is being read: the pass must notice and stop
    _before_each_file(monkeypatch, lambda stop: started.set() or stop.wait(10))
    hashing = fetch_then_hash(store, pinned, tmp_path / "c", "gs://x")
    assert started.wait(10)
    hashing.close()  # returns only once the thread is done
    with pytest.raises(Interrupted):
        hashing.result()


def test_finished_hands_back_known_digests(store, bucket: Bucket, tmp_path: Path) -> None:
    pinned = _upload(store, bucket, {"model.keras": os.urandom(5000)}, "models/h/done/")
    digests = fetch(store, pinned, tmp_path / "k", "gs://x")
    hashing = Hashing.finished(digests)
    hashing.close()
    assert hashing.result() == digests
