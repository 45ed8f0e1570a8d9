"""Immutable, content-addressed copies of validated artifacts: what Vertex is pointed at.

Registering the live upload path would let a later overwrite silently change a serving version.
So the exact validated bytes go to `{ARTIFACT_PREFIX}{name}/sha256-{digest}/` (outside the watched
prefix, so they never trigger a registration): SavedModel members by server-side copy pinned to the
validated generations; for a `.keras` upload, the SavedModel exported in the sandbox plus the
original `.keras` beside it. `registrar-manifest.json` is written last, create-only: its presence
means the directory is complete, and it lists the SHA-256 and CRC32C of every file, and the
digests of the validated source bytes, for `registrar verify`.

Registered bytes = validated bytes: a server-side copy is pinned to the validated generation
(`sourceGeneration` + `ifSourceGenerationMatch`; a vanished generation is `Superseded`), and
every placed object's CRC32C (and MD5 when GCS has one) must equal the digests of the bytes that
were downloaded and validated; any difference is `upload.digest_mismatch` and nothing is
registered.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from .objects import (
    DigestMismatch,
    Digests,
    ObjectInfo,
    ObjectStore,
    PreconditionFailed,
    file_digests,
)

MANIFEST_NAME = "registrar-manifest.json"
_PARALLEL_CALLS = 8  # shared by concurrent requests; urllib3 keeps 10 connections per host
_T = TypeVar("_T")


@dataclass(frozen=True)
class Source:
    """What is published, as the store sees it: objects pinned to the generations that were
    downloaded and validated, by their names relative to the upload. Plain values: the store
    knows no upload (intake's `Upload.source` builds this)."""

    uri: str  # gs://bucket/path, as the manifest names the source
    bucket: str
    members: Mapping[str, ObjectInfo]  # relative name -> the pinned object


@dataclass(frozen=True)
class Published:
    artifact_uri: str  # gs://bucket/dir/ — holding saved_model.pb, or 1/saved_model.pb (numbered)
    source_digest: str  # sha256 of the upload (the .keras bytes, or the SavedModel's file list)
    manifest: dict[str, str]  # relative path -> sha256 of every file in the artifact directory


class _Polluted(Exception):
    """The content-addressed directory holds different bytes (a crashed earlier export)."""


def manifest_digest(files: dict[str, str]) -> str:
    """sha256 over `sha256sum`-style lines, sorted: a digest of a whole directory's content."""
    text = "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def source_digest(validated: Mapping[str, Digests], *, single_file: bool) -> str:
    """sha256 of the validated bytes of a single-file upload (.keras), or of the validated file
    list of a directory (SavedModel)."""
    if single_file:
        (only,) = validated.values()
        return only.sha256
    return manifest_digest({relative: d.sha256 for relative, d in validated.items()})


# TF Serving loads `<model_base_path>/<number>/saved_model.pb`: in the numbered layout the files
# (manifest included) go to `<base>/1/` and the version registers `<base>/` as its artifact_uri.
NUMBERED_SUFFIX = "/1/"


def artifact_dir(
    settings_prefix: str, display_name: str, digest: str, *, numbered: bool = False
) -> str:
    """Where the files go: `…/sha256-D/` (Vertex prebuilt images load saved_model.pb there), or
    `…/tfs-sha256-D/1/` (TF Serving; another base, so the two layouts never nest)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", display_name).strip("-.") or "model"
    if numbered:
        return f"{settings_prefix}{safe}/tfs-sha256-{digest[:32]}{NUMBERED_SUFFIX}"
    return f"{settings_prefix}{safe}/sha256-{digest[:32]}/"


def serving_root(directory: str) -> str:
    """The directory a version registers as artifact_uri for files placed at `directory`."""
    if directory.endswith(NUMBERED_SUFFIX):
        return directory[: -len(NUMBERED_SUFFIX) + 1]
    return directory


_CONTENT_DIR = re.compile(
    r"^(?P<parent>.*/)(?:tfs-)?sha256-(?P<digest>[0-9a-f]{32})(?:-[0-9a-f]{8})?/$"
)


def same_content(uri_a: str, uri_b: str) -> bool:
    """Two artifact directories named by the same content digest, in either layout (a version
    moved to TF Serving serves the numbered copy of the flat directory it was registered with)."""
    a = _CONTENT_DIR.match(uri_a.rstrip("/") + "/")
    b = _CONTENT_DIR.match(uri_b.rstrip("/") + "/")
    return bool(a and b and a.group("parent", "digest") == b.group("parent", "digest"))


def _sibling(directory: str) -> str:
    """A fresh directory of the same layout, for when a crashed attempt left junk."""
    fresh = uuid.uuid4().hex[:8]
    if directory.endswith(NUMBERED_SUFFIX):
        return f"{serving_root(directory).rstrip('/')}-{fresh}{NUMBERED_SUFFIX}"
    return f"{directory.rstrip('/')}-{fresh}/"


def publish(
    source: Source,
    *,
    store: ObjectStore,
    directory: str,
    digest: str,
    validated: Mapping[str, Digests],
    exported_dir: Path | None,
) -> Published:
    """Place the artifact at `directory` (or a fresh sibling if a crashed attempt left junk).

    `validated`: relative member name -> digests of the bytes that were downloaded and
    validated (`ObjectStore.download_to`)."""
    for target in (directory, _sibling(directory)):
        # The listing _place needs overlaps the manifest read (unused if the manifest exists).
        listing = _pool().submit(store.list_objects, source.bucket, target)
        existing = read_manifest(store, source.bucket, target)
        if existing is not None and existing.get("source_digest") == digest:
            return Published(
                f"gs://{source.bucket}/{serving_root(target)}", digest, existing["files"]
            )
        if existing is not None:
            continue
        try:
            placed = _place(source, store, target, listing.result(), validated, exported_dir)
        except _Polluted:
            continue
        files = {relative: sha for relative, (sha, _) in placed.items()}
        manifest = {
            "source": source.uri,
            "source_digest": digest,
            "files": files,
            "crc32c": {relative: crc for relative, (_, crc) in placed.items()},
            "members": {relative: m.generation for relative, m in source.members.items()},
            "validated": {
                relative: {"generation": m.generation, **validated[relative].as_dict()}
                for relative, m in source.members.items()
            },
        }
        try:
            store.write_bytes(
                source.bucket,
                target + MANIFEST_NAME,
                json.dumps(manifest, indent=2, sort_keys=True).encode(),
                if_generation_match=0,
            )
        except PreconditionFailed:
            continue  # a concurrent worker finished the same directory; re-read it next round
        return Published(f"gs://{source.bucket}/{serving_root(target)}", digest, files)
    raise _Polluted(f"could not publish gs://{source.bucket}/{directory}")  # pragma: no cover


def _place(
    source: Source,
    store: ObjectStore,
    target: str,
    listing: list[ObjectInfo],
    validated: Mapping[str, Digests],
    exported_dir: Path | None,
) -> dict[str, tuple[str, str]]:
    """Every file in place under `target`: relative path -> (sha256 hex, crc32c base64)."""
    present = {o.name[len(target) :]: o for o in listing}

    def copy(relative: str, member: ObjectInfo) -> tuple[str, tuple[str, str]]:
        """Server-side copy, pinned to the validated generation, checked against what was
        validated (not against the source's metadata alone)."""
        seen = validated[relative]
        if relative in present:
            if _differs(present[relative], seen.crc32c, seen.md5):
                raise _Polluted(relative)
        else:
            try:
                copied = store.copy_object(member, target + relative)
            except PreconditionFailed:
                raise _Polluted(relative) from None
            if _differs(copied, seen.crc32c, seen.md5) or copied.size != seen.size:
                raise DigestMismatch(
                    f"the published copy gs://{copied.bucket}/{copied.name} (CRC32C "
                    f"{copied.crc32c}, MD5 {copied.md5_hash}, {copied.size:,} bytes) is not the "
                    f"validated bytes of {member.uri} generation {member.generation} (CRC32C "
                    f"{seen.crc32c}, MD5 {seen.md5}, {seen.size:,} bytes); nothing is registered."
                )
        return relative, (seen.sha256, seen.crc32c)

    def upload_export(path: Path, relative: str) -> tuple[str, tuple[str, str]]:
        """A file of the SavedModel exported from a .keras in the sandbox."""
        sha256, crc = file_digests(path)
        if relative in present:
            if present[relative].crc32c != crc:
                raise _Polluted(relative)
        else:
            try:
                placed = store.upload_file(path, source.bucket, target + relative)
            except PreconditionFailed:
                raise _Polluted(relative) from None
            if placed.crc32c != crc:
                raise DigestMismatch(
                    f"the uploaded export file gs://{placed.bucket}/{placed.name} has CRC32C "
                    f"{placed.crc32c}, the validated file {crc}; nothing is registered."
                )
        return relative, (sha256, crc)

    tasks: list[Callable[[], tuple[str, tuple[str, str]]]] = [
        partial(copy, relative, m) for relative, m in source.members.items()
    ]
    if exported_dir is not None:
        for path in sorted(p for p in exported_dir.rglob("*") if p.is_file()):
            relative = path.relative_to(exported_dir).as_posix()
            tasks.append(partial(upload_export, path, relative))
    return dict(_run_all(tasks))


def _differs(obj: ObjectInfo, crc32c: str, md5: str) -> bool:
    """GCS always has a CRC32C; an MD5 only for non-composite objects ("": none was known)."""
    return obj.crc32c != crc32c or bool(md5 and obj.md5_hash is not None and obj.md5_hash != md5)


def _run_all(tasks: list[Callable[[], _T]]) -> list[_T]:
    """Run independent storage calls concurrently (each is a round trip of a few ms that mostly
    waits on the network; a .keras export is 5 of them, a SavedModel one per file). Every task
    finishes before this returns, so nothing runs on after a failure; the first failure, in
    task order, is raised."""
    if len(tasks) <= 1:
        return [task() for task in tasks]
    futures = [_pool().submit(task) for task in tasks]
    concurrent.futures.wait(futures)
    return [future.result() for future in futures]


_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(
                max_workers=_PARALLEL_CALLS, thread_name_prefix="publish"
            )
        return _POOL


def read_manifest(store: ObjectStore, bucket: str, directory: str) -> dict[str, Any] | None:
    """The directory's manifest: None when absent, {} when present but unreadable."""
    found = store.read_bytes(bucket, directory + MANIFEST_NAME)
    if found is None:
        return None
    try:
        data = json.loads(found[0])
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) and "files" in data else {}
