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
from .vertex_types import ALIAS_PATTERN

MANAGED_BY = "gcs-model-registrar"
_MAX_DESCRIPTION = 4000


def label_value(text: str) -> str:
    """Best-effort label value: lowercase, invalid characters -> '-', at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:63]


def parse_aliases(raw: str | None, where: str) -> tuple[str, ...]:
    aliases = tuple(dict.fromkeys(a.strip() for a in (raw or "").split(",") if a.strip()))
    bad = [a for a in aliases if not ALIAS_PATTERN.fullmatch(a) or a.isdigit()]
    if bad:
        raise PermanentError(
            f"{where}: custom metadata `aliases` has invalid Vertex alias(es) {bad}: an alias is "
            "2-128 characters, starts with a lowercase letter, ends with a lowercase letter or "
            "digit, and has only letters, digits and hyphens in between. Fix the metadata "
            "and upload again.",
            code="bad_alias",
        )
    return aliases


def _non_finite(validation: Any) -> bool:
    return bool(getattr(validation, "sample_non_finite", ()))


def _validation_label(validation: Any) -> str:
    """`passed`, `passed-sample-non-finite` (NaN/inf on the random sample), or `smoke-skipped`."""
    if validation.smoke_test != "passed":
        return "smoke-skipped"
    return "passed-sample-non-finite" if _non_finite(validation) else "passed"


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
        "validation": _validation_label(validation),
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
    if _non_finite(validation):  # first, so no truncation hides it
        description = f"WARNING: {validation.non_finite_text()}.\n\n{description}"
    return VersionRequest(
        display_name=display_name,
        artifact_uri=published.artifact_uri,
        serving_image=settings.serving_image,
        description=description[:_MAX_DESCRIPTION],
        labels=labels,
        aliases=aliases,
        make_default=settings.make_new_version_default,
    )
