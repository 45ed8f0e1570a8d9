"""The rules `VertexRegistry` checks before any call, and the SDK message -> contract value step.

No SDK import: model ids, alias rules and filter strings are pure functions of their inputs. The
values themselves (`ModelVersionInfo`...) belong to the contract, handlers/registry/interface.py.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from ..errors import PermanentError
from .interface import DEFAULT_ALIAS, UPLOAD_KEY_LABEL, ModelVersionInfo, VersionRequest

ALIAS_PATTERN = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
MODEL_ID_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")  # Vertex: <= 63, not a digit first


def model_id_for(display_name: str) -> str:
    """Deterministic Vertex model id for a display name (≤63 `[a-z0-9_-]`, starts with a letter).

    A name that is already a valid id is used as is; any other gets a short hash of the original
    appended, so two different names never map to the same id.
    """
    base = re.sub(r"[^a-z0-9_-]+", "-", display_name.lower()).strip("-_") or "model"
    if not base[0].isalpha():
        base = f"m-{base}"
    if base == display_name and MODEL_ID_PATTERN.fullmatch(base):
        return base
    digest = hashlib.sha256(display_name.encode()).hexdigest()[:8]
    return f"{base[: 63 - 9].rstrip('-_')}-{digest}"


def bad_aliases(aliases: Sequence[str]) -> list[str]:
    """The one alias rule for aliases a request sets (metadata, VersionRequest): Vertex's alias
    syntax, and never `default`, which only DEFAULT_VERSION_POLICY and the gate move."""
    return [a for a in aliases if a == DEFAULT_ALIAS or not ALIAS_PATTERN.fullmatch(a)]


def check_aliases(aliases: Sequence[str]) -> None:
    bad = bad_aliases(aliases)
    if bad:
        raise PermanentError(
            f"Version alias {bad[0]!r} is not allowed: expected [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9]"
            " (starts with a lowercase letter, 2-128 characters) and not 'default' (use "
            "make_default / DEFAULT_VERSION_POLICY for that).",
            code="bad_alias",
        )


def check_request(request: VersionRequest) -> None:
    if not request.labels.get(UPLOAD_KEY_LABEL):
        raise PermanentError(
            f"VersionRequest.labels lacks {UPLOAD_KEY_LABEL!r}: without it a retried upload "
            "would create a duplicate version.",
            code="missing_upload_key",
        )
    check_aliases(request.aliases)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_query(terms: list[str], labels: dict[str, str] | None) -> dict[str, str]:
    # The documented quoted-key form (`labels."a key"="v"`): our keys contain hyphens, and an
    # unquoted hyphenated key is not a form Vertex documents.
    terms = terms + [f"labels.{quote(k)}={quote(v)}" for k, v in sorted((labels or {}).items())]
    return {"filter": " AND ".join(terms)} if terms else {}


def version_info(model: Any) -> ModelVersionInfo:
    return ModelVersionInfo(
        model=model.name.split("@", 1)[0],
        version_id=model.version_id,
        display_name=model.display_name,
        aliases=tuple(model.version_aliases),
        labels=dict(model.labels),
        artifact_uri=model.artifact_uri,
        description=model.version_description or model.description,
        create_time=model.version_create_time or None,
        serving_image=model.container_spec.image_uri if model.container_spec else "",
    )
