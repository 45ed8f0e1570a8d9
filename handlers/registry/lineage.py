"""Lineage: the labels and description every registered version carries.

Vertex labels are short (keys/values <= 63 chars of lowercase letters, digits, `_`, `-`), so GCS
names and base64 checksums don't fit: the description holds the full `gs://` source, the labels
hold what can be filtered on (upload key, generation, digest prefix, validation outcome).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import PermanentError
from ..gcs.publish import Published
from ..intake.uploads import Upload
from ..settings import Settings
from .interface import UPLOAD_KEY_LABEL, VersionRequest
from .labels import MANAGED_BY
from .vertex_types import DEFAULT_ALIAS, bad_aliases

_MAX_DESCRIPTION = 4000


def label_value(text: str) -> str:
    """Best-effort label value: lowercase, invalid characters -> '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def parse_aliases(raw: str | None, where: str) -> tuple[str, ...]:
    """The custom metadata `aliases` of an upload, checked by the one alias rule
    (`vertex_types.bad_aliases`) when the metadata is read: before anything is downloaded."""
    aliases = tuple(dict.fromkeys(a.strip() for a in (raw or "").split(",") if a.strip()))
    bad = bad_aliases(aliases)
    if DEFAULT_ALIAS in bad:
        raise PermanentError(
            f"{where}: custom metadata `aliases` names {DEFAULT_ALIAS!r}, which metadata cannot "
            "set: the default version is decided by DEFAULT_VERSION_POLICY (or the promotion "
            "gate, with PROMOTION_METRIC). Remove it from the metadata and upload again.",
            code="bad_alias",
        )
    if bad:
        raise PermanentError(
            f"{where}: custom metadata `aliases` has invalid Vertex alias(es) {bad}: an alias is "
            "2-128 characters, starts with a lowercase letter, ends with a lowercase letter or "
            "digit, and has only letters, digits and hyphens in between. Fix the metadata "
            "and upload again.",
            code="bad_alias",
        )
    return aliases


def version_request(
    *,
    upload: Upload,
    display_name: str,
    version_hint: str | None,
    aliases: tuple[str, ...],
    published: Published,
    validation: Any,
    settings: Settings,
) -> VersionRequest:
    labels = {
        "managed-by": MANAGED_BY,
        UPLOAD_KEY_LABEL: upload.upload_key,
        "source-generation": str(upload.generation),
        "source-kind": "keras" if upload.kind == "keras" else "saved-model",
        "content-sha256": published.source_digest[:40],
        "validation": "passed" if validation.smoke_test == "passed" else "smoke-skipped",
        "source-bucket": label_value(upload.bucket),
    }
    if version_hint:
        labels["source-version"] = label_value(version_hint)
    metadata = upload.metadata
    signature = "; ".join(
        [
            "inputs " + ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in validation.inputs),
            "outputs "
            + ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in validation.outputs),
        ]
    )
    provenance = (
        f"Registered by {MANAGED_BY} from {upload.uri} (generation {upload.generation}, "
        f"{len(upload.members)} file(s)), sha256 {published.source_digest}. "
        + (f"Version from the path: {version_hint}. " if version_hint else "")
        + f"Validation: {validation.summary()}. serving_default {signature}."
    )
    user_text = metadata.get("description", "").strip()
    description = f"{user_text}\n\n{provenance}" if user_text else provenance
    return VersionRequest(
        display_name=display_name,
        artifact_uri=published.artifact_uri,
        serving_image=settings.serving_image,
        description=description[:_MAX_DESCRIPTION],
        labels=labels,
        aliases=aliases,
        make_default=settings.make_new_version_default,
    )
