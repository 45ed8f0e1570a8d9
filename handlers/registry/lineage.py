"""Lineage: the labels and description every registered version carries.

Vertex labels are short (keys/values <= 63 chars of lowercase letters, digits, `_`, `-`), so GCS
names and base64 checksums don't fit: the description holds the full `gs://` source, the labels
hold what can be filtered on (upload key, generation, digest prefix, validation outcome).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import PermanentError
from ..settings import Settings
from .interface import UPLOAD_KEY_LABEL, VersionRequest
from .labels import MANAGED_BY, MANAGED_BY_LABEL
from .vertex_types import DEFAULT_ALIAS, bad_aliases

_MAX_DESCRIPTION = 4000


@dataclass(frozen=True)
class Provenance:
    """Where a version comes from, as plain values: the registry knows no upload, no published
    directory and no validation report (the pipeline's handlers/registration.py fills this in)."""

    upload_key: str
    bucket: str
    uri: str  # gs://bucket/path of the upload
    generation: int
    kind: str  # "keras" or "saved_model"
    files: int  # how many objects the upload is
    metadata: Mapping[str, str]  # the upload's custom metadata (description)
    source_digest: str
    artifact_uri: str  # the published, content-addressed copy
    smoke_passed: bool
    validation_summary: str
    signature: str  # "inputs x:float32[None, 4]; outputs y:float32[None, 1]"
    warning: str = ""  # a finding the version must carry (NaN/inf on the random sample)


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


def _validation_label(source: Provenance) -> str:
    """`passed`, `passed-sample-non-finite` (NaN/inf on the random sample), or `smoke-skipped`."""
    if not source.smoke_passed:
        return "smoke-skipped"
    return "passed-sample-non-finite" if source.warning else "passed"


def version_request(
    *,
    source: Provenance,
    display_name: str,
    version_hint: str | None,
    aliases: tuple[str, ...],
    settings: Settings,
) -> VersionRequest:
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        UPLOAD_KEY_LABEL: source.upload_key,
        "source-generation": str(source.generation),
        "source-kind": "keras" if source.kind == "keras" else "saved-model",
        "content-sha256": source.source_digest[:40],
        "validation": _validation_label(source),
        "source-bucket": label_value(source.bucket),
    }
    if version_hint:
        labels["source-version"] = label_value(version_hint)
    provenance = (
        f"Registered by {MANAGED_BY} from {source.uri} (generation {source.generation}, "
        f"{source.files} file(s)), sha256 {source.source_digest}. "
        + (f"Version from the path: {version_hint}. " if version_hint else "")
        + f"Validation: {source.validation_summary}. serving_default {source.signature}."
    )
    user_text = source.metadata.get("description", "").strip()
    description = f"{user_text}\n\n{provenance}" if user_text else provenance
    if source.warning:  # first, so no truncation hides it
        description = f"WARNING: {source.warning}.\n\n{description}"
    return VersionRequest(
        display_name=display_name,
        artifact_uri=source.artifact_uri,
        serving_image=settings.serving_image,
        description=description[:_MAX_DESCRIPTION],
        labels=labels,
        aliases=aliases,
        make_default=settings.make_new_version_default,
    )
