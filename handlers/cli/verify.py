"""Is a registered version still what was validated? Re-hash its artifact directory.

The bytes in the bucket are compared with what was validated, never with themselves: the
registration record (`artifact_files`, `digest`; kept under STATE_PREFIX, which the artifact's
writers cannot touch), the `registrar-manifest.json` written into the artifact directory at
publish time (SHA-256 and CRC32C of every file, and the SHA-256 / CRC32C / MD5 of each source
member's bytes as downloaded and validated), and the version's `content-sha256` label in Vertex.
Every object is downloaded and re-hashed (SHA-256 and CRC32C), so a same-size overwrite is
caught as surely as a deletion; an object whose bytes disagree with its own GCS metadata too.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..gcs.objects import DigestMismatch, Digests, ObjectInfo, ObjectStore
from ..gcs.publish import (
    MANIFEST_NAME,
    NUMBERED_SUFFIX,
    manifest_digest,
    read_manifest,
    same_content,
)
from ..settings import Settings

MODIFIED, MISSING, EXTRA, DIGEST, METADATA = "modified", "missing", "extra", "digest", "metadata"


@dataclass(frozen=True)
class Problem:
    kind: str  # modified, missing, extra, digest, metadata
    path: str  # relative to the artifact directory ("" for the directory as a whole)
    detail: str


@dataclass
class Verification:
    version: str  # MODEL@VERSION
    artifact_uri: str
    files_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "artifact_uri": self.artifact_uri,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "problems": [p.__dict__ for p in self.problems],
        }


def verify(
    store: ObjectStore,
    settings: Settings,
    *,
    version: str,
    artifact_uri: str,
    record: dict[str, Any] | None,
    label_digest: str | None,
) -> Verification:
    """Compare gs://…/artifact dir with what was recorded when `version` was registered."""
    result = Verification(version, artifact_uri)
    problems = result.problems
    if not artifact_uri.startswith("gs://"):
        problems.append(Problem(METADATA, "", f"artifact_uri {artifact_uri!r} is not in GCS"))
        return result
    bucket, _, directory = artifact_uri.removeprefix("gs://").partition("/")
    directory = base = directory.rstrip("/") + "/"
    manifest = read_manifest(store, bucket, directory)
    if manifest is None:  # TF Serving's numbered layout: the files are in <artifact_uri>/1/
        numbered = read_manifest(store, bucket, base + NUMBERED_SUFFIX.lstrip("/"))
        if numbered is not None:
            directory, manifest = base + NUMBERED_SUFFIX.lstrip("/"), numbered
    if not manifest:
        problems.append(Problem(METADATA, MANIFEST_NAME, "manifest is missing or unreadable"))
    recorded_uri = (record or {}).get("artifact_uri")
    if recorded_uri not in (None, artifact_uri) and not same_content(recorded_uri, artifact_uri):
        problems.append(
            Problem(
                METADATA,
                "",
                f"the record says artifact {record['artifact_uri']}, the version says "
                f"{artifact_uri}",
            )
        )
    expected = _expected_files(record, manifest, problems)
    if expected is None:
        problems.append(
            Problem(METADATA, "", "neither a registration record nor a manifest lists the files")
        )
        return result
    validated = (manifest or {}).get("validated")
    for relative, seen in (validated if isinstance(validated, dict) else {}).items():
        if isinstance(seen, dict) and seen.get("sha256") != expected.get(relative):
            problems.append(
                Problem(
                    METADATA,
                    str(relative),
                    "the manifest's digest of the validated source bytes differs from the "
                    "recorded file digest",
                )
            )
    present = {o.name[len(directory) :]: o for o in store.list_objects(bucket, directory)}
    actual: dict[str, str] = {}
    crc32c = _validated_crc32c(manifest)
    with tempfile.TemporaryDirectory(prefix="registrar-verify-", dir=settings.temp_dir) as tmp:
        for relative, digest in sorted(expected.items()):
            obj = present.get(relative)
            if obj is None:
                problems.append(Problem(MISSING, relative, "listed at registration, now gone"))
                continue
            seen = _digests(store, obj, Path(tmp), problems, relative)
            result.files_checked += 1
            if seen is None:
                continue
            actual[relative] = seen.sha256
            if seen.sha256 != digest:
                problems.append(
                    Problem(
                        MODIFIED,
                        relative,
                        f"sha256 {seen.sha256[:16]}… differs from the recorded {digest[:16]}…",
                    )
                )
            elif relative in crc32c and crc32c[relative] != seen.crc32c:
                # The SHA-256 matches what was recorded: the manifest is what is wrong.
                problems.append(
                    Problem(
                        METADATA,
                        relative,
                        f"the manifest's crc32c {crc32c[relative]} is not the bytes' "
                        f"{seen.crc32c} (their sha256 matches the record)",
                    )
                )
    for relative in sorted(set(present) - set(expected) - {MANIFEST_NAME}):
        problems.append(Problem(EXTRA, relative, "not part of the registered artifact"))
    if directory != base:  # beside the version directory: served by nobody, but not ours
        for obj in store.list_objects(bucket, base):
            if not obj.name.startswith(directory):
                relative = obj.name[len(base) :]
                problems.append(Problem(EXTRA, relative, "not part of the registered artifact"))
    _check_digest(record, manifest, label_digest, actual, problems)
    return result


def _expected_files(
    record: dict[str, Any] | None, manifest: dict[str, Any] | None, problems: list[Problem]
) -> dict[str, str] | None:
    recorded = record.get("artifact_files") if record else None
    listed = manifest.get("files") if manifest else None
    if isinstance(recorded, dict) and isinstance(listed, dict) and recorded != listed:
        changed = sorted(set(recorded.items()) ^ set(listed.items()))
        names = sorted({name for name, _ in changed})
        problems.append(
            Problem(
                METADATA,
                MANIFEST_NAME,
                f"manifest disagrees with the registration record on {', '.join(names[:5])}",
            )
        )
    for candidate in (recorded, listed):
        if isinstance(candidate, dict):
            return {str(k): str(v) for k, v in candidate.items()}
    return None


def _check_digest(
    record: dict[str, Any] | None,
    manifest: dict[str, Any] | None,
    label_digest: str | None,
    actual: dict[str, str],
    problems: list[Problem],
) -> None:
    """Recompute the upload digest (the .keras bytes, or the SavedModel file list) and compare."""
    members = (record or {}).get("members") or (manifest or {}).get("members") or {}
    if not members or any(m not in actual for m in members):
        return  # missing files are already reported; nothing sound to recompute
    kind = (record or {}).get("kind") or ("keras" if len(members) == 1 else "saved_model")
    if kind == "keras":
        computed = actual[next(iter(members))]
    else:
        computed = manifest_digest({m: actual[m] for m in members})
    witnesses = {
        "record": str((record or {}).get("digest", "")).removeprefix("sha256:"),
        "manifest": str((manifest or {}).get("source_digest") or ""),
    }
    for witness, value in witnesses.items():
        if value and value != computed:
            problems.append(
                Problem(DIGEST, "", f"content digest {computed[:16]}… ≠ {witness}'s {value[:16]}…")
            )
    if label_digest and not computed.startswith(label_digest):
        problems.append(
            Problem(DIGEST, "", f"content digest {computed[:16]}… ≠ the version's label")
        )


def _validated_crc32c(manifest: dict[str, Any] | None) -> dict[str, str]:
    """relative path -> CRC32C of what was validated: the source members' bytes as downloaded
    (`validated`), and every placed file (`crc32c`); they must agree where both are listed."""
    out: dict[str, str] = {}
    if not manifest:
        return out
    files = manifest.get("crc32c")
    if isinstance(files, dict):
        out.update({str(k): str(v) for k, v in files.items()})
    validated = manifest.get("validated")
    if isinstance(validated, dict):
        for relative, seen in validated.items():
            if isinstance(seen, dict) and seen.get("crc32c"):
                out.setdefault(str(relative), str(seen["crc32c"]))
    return out


def _digests(
    store: ObjectStore, obj: ObjectInfo, tmp: Path, problems: list[Problem], relative: str
) -> Digests | None:
    target = tmp / hashlib.sha256(obj.name.encode()).hexdigest()
    try:
        return store.download(obj, target)
    except DigestMismatch as exc:
        problems.append(Problem(MODIFIED, relative, f"bytes disagree with GCS metadata: {exc}"))
        return None
    finally:
        target.unlink(missing_ok=True)
