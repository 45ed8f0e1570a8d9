"""The object store, as the pipeline needs it: named after the GCS JSON API's verbs.

Every read is pinned to an object generation: a concurrent overwrite can never mix two uploads.
google-cloud-storage is imported lazily (~0.17 s) and its client created once per process; with
`STORAGE_EMULATOR_HOST` set it talks to fake-gcs-server with anonymous credentials.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import (
    PermanentError,
    PermissionDenied,
    Rejected,
    Superseded,
    TransientError,
)
from ..settings import Settings

_RETRY_DEADLINE_SECONDS = 30.0


class PreconditionFailed(Exception):
    """An `ifGenerationMatch` precondition did not hold (someone else wrote first)."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    name: str
    generation: int
    size: int = 0
    crc32c: str | None = None
    md5_hash: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class ObjectStore:
    def __init__(self, settings: Settings, client: Any = None) -> None:
        self._settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            if self._settings.storage_emulator_host:
                from google.auth.credentials import AnonymousCredentials

                self._client = storage.Client(
                    project=self._settings.project,
                    credentials=AnonymousCredentials(),
                    client_options={"api_endpoint": self._settings.storage_emulator_host},
                )
            else:
                self._client = storage.Client(project=self._settings.project)
        return self._client

    def get_object(
        self, bucket: str, name: str, generation: int | None = None
    ) -> ObjectInfo | None:
        """The live generation's metadata (or that `generation`'s), None when it does not exist."""
        with _errors(f"gs://{bucket}/{name}"):
            blob = self.client.bucket(bucket).get_blob(name, generation=generation, retry=_retry())
            return _info(blob) if blob is not None else None

    def list_objects(self, bucket: str, prefix: str) -> list[ObjectInfo]:
        with _errors(f"gs://{bucket}/{prefix}", permission="storage.objects.list"):
            blobs = self.client.list_blobs(bucket, prefix=prefix, retry=_retry())
            return [_info(blob) for blob in blobs]

    def download(self, obj: ObjectInfo, destination: Path) -> Digests:
        """Stream exactly generation `obj.generation` into a new file `destination` (created
        with O_EXCL | O_NOFOLLOW: an existing file or symlink there is never followed or
        overwritten). See `download_to`."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(destination, flags, 0o600), "wb") as handle:
            return self.download_to(obj, handle)

    def download_to(self, obj: ObjectInfo, handle: IO[bytes], *, sha256: bool = True) -> Digests:
        """Stream exactly generation `obj.generation` into the open file `handle`.

        The client checks the bytes against the CRC32C the response carries (a mismatch there is
        corruption in transit: `TransientError`, retried). The bytes are hashed as they pass
        (SHA-256, CRC32C) and compared, with the MD5 the response declares, to the object's
        metadata as listed (`obj`): a different size, CRC32C or MD5 means the bytes are not the
        object that was listed -> `DigestMismatch`; more bytes than its size stop the download at
        once (e.g. an object stored with Content-Encoding: gzip, which is served decompressed).
        A vanished generation -> Superseded. `sha256=False`: no SHA-256 on the way (its
        `Digests.sha256` is "": the caller hashes the file later, `intake.download.Hashing`)."""
        blob = self.client.bucket(obj.bucket).blob(obj.name, generation=obj.generation)
        writer = _HashingWriter(handle, obj, sha256=sha256)
        with _errors(obj.uri, missing_means_superseded=True):
            # crc32c, not md5: composite (parallel-upload) objects have no MD5.
            blob.download_to_file(writer, checksum="crc32c", retry=_retry())
        # The MD5 is GCS's for the bytes it sent (X-Goog-Hash), not a third hash of ours: the
        # bytes are held to CRC32C (by the client, and below) at a pinned generation, and an MD5
        # of our own would cost ~1.3 s per GB for no check those do not already make.
        digests = writer.digests(served_md5=blob.md5_hash)
        problem = digests.mismatch(obj)
        if problem:
            raise DigestMismatch(f"{obj.uri} generation {obj.generation}: {problem}")
        return digests

    def read_object(self, obj: ObjectInfo) -> bytes:
        """The whole content of exactly generation `obj.generation` (small objects only)."""
        blob = self.client.bucket(obj.bucket).blob(obj.name, generation=obj.generation)
        with _errors(obj.uri, missing_means_superseded=True):
            return blob.download_as_bytes(checksum="crc32c", retry=_retry())

    def read_bytes(self, bucket: str, name: str) -> tuple[bytes, int] | None:
        """Current contents and generation of a small object (a record), or None."""
        from google.api_core import exceptions as gx

        with _errors(f"gs://{bucket}/{name}"):
            blob = self.client.bucket(bucket).get_blob(name, retry=_retry())
            if blob is None:
                return None
            try:
                pinned = self.client.bucket(bucket).blob(name, generation=blob.generation)
                data = pinned.download_as_bytes(retry=_retry())
            except gx.NotFound:
                return None  # replaced between the two calls: the caller reads again if it cares
            return data, int(blob.generation)

    def write_bytes(
        self,
        bucket: str,
        name: str,
        data: bytes,
        *,
        if_generation_match: int,
        content_type: str = "application/json",
    ) -> int:
        """Create (`if_generation_match=0`) or replace exactly one generation; returns the new one."""
        from google.api_core import exceptions as gx

        blob = self.client.bucket(bucket).blob(name)
        with _errors(f"gs://{bucket}/{name}", permission="storage.objects.create"):
            try:
                blob.upload_from_string(
                    data,
                    content_type=content_type,
                    if_generation_match=if_generation_match,
                    retry=_retry(),
                )
            except gx.PreconditionFailed as exc:
                raise PreconditionFailed(str(exc)) from exc
            return int(blob.generation)

    def upload_file(self, source: Path, bucket: str, name: str) -> ObjectInfo:
        """Create a new object from a local file; an existing object is left as it is."""
        from google.api_core import exceptions as gx

        blob = self.client.bucket(bucket).blob(name)
        with _errors(f"gs://{bucket}/{name}", permission="storage.objects.create"):
            try:
                blob.upload_from_filename(
                    str(source), if_generation_match=0, checksum="crc32c", retry=_retry()
                )
            except gx.PreconditionFailed as exc:
                raise PreconditionFailed(f"gs://{bucket}/{name} already exists") from exc
            return _info(blob)

    def copy_object(self, source: ObjectInfo, destination_name: str) -> ObjectInfo:
        """Server-side copy of exactly `source.generation` (rewrite with `sourceGeneration` and
        `ifSourceGenerationMatch`: works for any size). Returns the new object, whose CRC32C /
        MD5 the caller compares with the bytes it validated."""
        from google.api_core import exceptions as gx

        bucket = self.client.bucket(source.bucket)
        src = bucket.blob(source.name, generation=source.generation)
        dst = bucket.blob(destination_name)
        with _errors(
            source.uri, missing_means_superseded=True, permission="storage.objects.create"
        ):
            try:
                pinned = {
                    "if_generation_match": 0,
                    "if_source_generation_match": source.generation,
                    "retry": _retry(),
                }
                token, _, _ = dst.rewrite(src, **pinned)
                while token is not None:
                    token, _, _ = dst.rewrite(src, token=token, **pinned)
            except gx.PreconditionFailed as exc:
                raise PreconditionFailed(f"gs://{source.bucket}/{destination_name} exists") from exc
            if dst.generation is None:  # the final rewrite reply carries the new object already
                dst.reload(retry=_retry())
            return _info(dst)


class DigestMismatch(Rejected):
    """The bytes read or copied are not the bytes the object's metadata (or the validation)
    describes: never registered."""

    code = "upload.digest_mismatch"


@dataclass(frozen=True)
class Digests:
    """What a download saw: the bytes' SHA-256 (hex) and, as GCS spells them, CRC32C and MD5
    (base64 of the big-endian / raw digest)."""

    sha256: str
    crc32c: str
    md5: str
    size: int

    def mismatch(self, obj: ObjectInfo) -> str | None:
        """How these bytes differ from what `obj`'s metadata says, or None."""
        if self.size != obj.size:
            return f"{self.size:,} bytes, but the object's size is {obj.size:,}"
        if obj.crc32c and obj.crc32c != self.crc32c:
            return f"CRC32C {self.crc32c}, but the object's metadata says {obj.crc32c}"
        if obj.md5_hash and self.md5 and obj.md5_hash != self.md5:  # "": none was served
            return f"MD5 {self.md5}, but the object's metadata says {obj.md5_hash}"
        return None

    def as_dict(self) -> dict[str, str | int]:
        return {"sha256": self.sha256, "crc32c": self.crc32c, "md5": self.md5, "size": self.size}


def crc32c_b64(checksum: Any) -> str:
    return base64.b64encode(checksum.digest()).decode()


_CHUNK = 1 << 20


class Interrupted(Exception):
    """`file_digests` was told to stop."""


def file_digests(path: Path, stop: threading.Event | None = None) -> tuple[str, str]:
    """SHA-256 (hex) and CRC32C (base64, as GCS spells it) of a local file, opened without
    following a symlink; `stop` set -> `Interrupted`, between 1 MiB chunks."""
    import google_crc32c

    sha = hashlib.sha256()
    crc = google_crc32c.Checksum()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        while chunk := handle.read(_CHUNK):
            if stop is not None and stop.is_set():
                raise Interrupted(path.name)
            sha.update(chunk)  # releases the GIL on large buffers: other threads run meanwhile
            crc.update(chunk)
    return sha.hexdigest(), crc32c_b64(crc)


class _HashingWriter:
    """File wrapper that hashes what passes through (CRC32C, and SHA-256 unless the caller
    hashes later), and stops at once when more bytes arrive than the object has."""

    def __init__(self, raw: IO[bytes], obj: ObjectInfo, *, sha256: bool = True) -> None:
        import google_crc32c

        self._raw = raw
        self._obj = obj
        self.size = 0
        self.sha256 = hashlib.sha256() if sha256 else None
        self.crc32c = google_crc32c.Checksum()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.size > self._obj.size:
            raise DigestMismatch(
                f"{self._obj.uri} generation {self._obj.generation}: more bytes arrived than its "
                f"size ({self._obj.size:,}); an object stored with Content-Encoding: gzip is "
                "served decompressed. Upload the model without compression."
            )
        if self.sha256 is not None:
            self.sha256.update(data)
        self.crc32c.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def digests(self, served_md5: str | None) -> Digests:
        sha256 = self.sha256.hexdigest() if self.sha256 is not None else ""
        return Digests(sha256, crc32c_b64(self.crc32c), served_md5 or "", self.size)


def _info(blob: Any) -> ObjectInfo:
    return ObjectInfo(
        bucket=blob.bucket.name,
        name=blob.name,
        generation=int(blob.generation),
        size=int(blob.size or 0),
        crc32c=blob.crc32c,
        md5_hash=blob.md5_hash,
        # Custom metadata is string to string; anything else (a null) is as good as absent.
        metadata={k: v for k, v in (blob.metadata or {}).items() if isinstance(v, str)},
    )


def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_deadline(_RETRY_DEADLINE_SECONDS)


def is_transient(exc: BaseException) -> bool:
    """The one GCS rule: what python-storage's own retry retries (429, 408, 500, 502-504, network
    errors: `DEFAULT_RETRY`'s predicate), or a `RetryError`, its retries having run out on one."""
    from google.api_core import exceptions as gx
    from google.cloud.storage.retry import _should_retry  # DEFAULT_RETRY's predicate

    return isinstance(exc, gx.RetryError) or bool(_should_retry(exc))


@contextmanager
def _errors(
    where: str, *, missing_means_superseded: bool = False, permission: str = "storage.objects.get"
) -> Iterator[None]:
    """Translate storage failures into the pipeline's ack/retry vocabulary."""
    from google.api_core import exceptions as gx

    try:
        yield
    except (PreconditionFailed, PermanentError, TransientError, Superseded):
        raise  # DigestMismatch (a Rejected) included
    except gx.NotFound as exc:
        if missing_means_superseded:
            raise Superseded(f"{where} no longer exists at that generation") from exc
        raise PermanentError(f"{where}: not found ({exc.message})", code="not_found") from exc
    except gx.Forbidden as exc:
        raise PermissionDenied(
            f"permission {permission} denied on {where}: grant the function's service account "
            f"a role with {permission} on it (IAM changes take minutes; the event is redelivered)",
            permission=permission,
            resource=where,
        ) from exc
    except Exception as exc:
        if is_transient(exc):
            raise TransientError(f"storage call on {where} failed: {exc}") from exc
        if type(exc).__name__ == "DataCorruption":  # checksum mismatch while downloading
            raise TransientError(f"download of {where} failed its CRC32C check") from exc
        raise
