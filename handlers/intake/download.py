"""Pinned objects into a new local directory: the one way the function downloads an upload.

Every name is checked first (`names.check_names`: canonical, no two onto one file), so a bad name
is a rejection before a byte is read; each file is created inside the new directory with
O_EXCL | O_NOFOLLOW (`names.create_file`); each download is hashed and held to the object's
metadata by the store.

`fetch_then_hash` leaves the SHA-256 (which only names the published copy and fills its
manifest) to a thread that reads the files back while the sandbox validates them: on two cores a
download then costs what the transfer does, not also SHA-256's ~0.7 s per GB. The CRC32C that
holds the bytes to the object is still computed as they arrive.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from collections.abc import Mapping
from pathlib import Path

from ..gcs.objects import DigestMismatch, Digests, ObjectInfo, ObjectStore, file_digests
from . import names

_HASHERS = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="sha256")


def fetch(
    store: ObjectStore, files: dict[str, ObjectInfo], root: Path, where: str
) -> dict[str, Digests]:
    """`files` (relative name -> pinned object) into the new directory `root`; their digests."""
    return _download(store, files, root, where, sha256=True)


def fetch_then_hash(
    store: ObjectStore, files: dict[str, ObjectInfo], root: Path, where: str
) -> Hashing:
    """As `fetch`, the SHA-256 computed afterwards on a thread: `Hashing.result()` has the
    digests. The files must stay where they are until then (hard-link them, do not move them)."""
    return Hashing.start(root, _download(store, files, root, where, sha256=False))


def _download(
    store: ObjectStore, files: dict[str, ObjectInfo], root: Path, where: str, *, sha256: bool
) -> dict[str, Digests]:
    names.check_names(list(files), where)
    root.mkdir(mode=0o700)
    digests: dict[str, Digests] = {}
    for relative, obj in files.items():
        with names.create_file(root, relative) as handle:
            digests[relative] = store.download_to(obj, handle, sha256=sha256)
    return digests


class Hashing:
    """SHA-256 of downloaded files, on a thread (`Hashing.start`), or already known
    (`Hashing.finished`). Each file's CRC32C is computed again on the way and must be the
    download's: the bytes hashed are the bytes that were held to the object (a file changed in
    between -> `DigestMismatch`)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._future: concurrent.futures.Future[dict[str, Digests]] = concurrent.futures.Future()

    @classmethod
    def start(cls, root: Path, fetched: Mapping[str, Digests]) -> Hashing:
        hashing = cls()
        hashing._future = _HASHERS.submit(hashing._run, root, dict(fetched))
        return hashing

    @classmethod
    def finished(cls, digests: Mapping[str, Digests]) -> Hashing:
        hashing = cls()
        hashing._future.set_result(dict(digests))
        return hashing

    def result(self) -> dict[str, Digests]:
        """The digests, SHA-256 included (waits for the thread)."""
        return self._future.result()

    def close(self) -> None:
        """Stop early (e.g. the upload was rejected) and wait: the files are about to go."""
        self._stop.set()
        concurrent.futures.wait([self._future])

    def _run(self, root: Path, fetched: dict[str, Digests]) -> dict[str, Digests]:
        done = {}
        for relative, seen in fetched.items():
            sha256, crc32c = file_digests(names.local_path(root, relative), self._stop)
            if crc32c != seen.crc32c:
                raise DigestMismatch(
                    f"{relative}: the local copy changed after its download (CRC32C {crc32c}, "
                    f"downloaded {seen.crc32c}); nothing is registered."
                )
            done[relative] = dataclasses.replace(seen, sha256=sha256)
        return done
