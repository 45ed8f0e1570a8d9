"""Finding models, versions and their registration records from what an operator types.

`NAME` may be a display name, a model id or a full resource name; `NAME@REF` adds a version id or
an alias. Every registered version carries its lineage (handlers/registry/lineage.py): the description
names the `gs://` source, the labels hold the upload key and source generation, so the record
object written at registration (handlers/gcs/records.py) can be found from the version alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import PermanentError
from ..gcs.objects import ObjectStore
from ..gcs.records import record_name
from ..registry.interface import UPLOAD_KEY_LABEL, ModelNotFound, ModelVersionInfo
from ..registry.vertex import VertexRegistry
from ..registry.vertex_types import MODEL_ID_PATTERN, model_id_for
from ..settings import Settings
from .output import USAGE, CliError

_SOURCE = re.compile(r"\bfrom (gs://.+?) \(generation (\d+), \d+ file")
_REF = re.compile(r"^(?P<name>.+?)@(?P<ref>[A-Za-z0-9][A-Za-z0-9-]*)$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    ref: str | None  # version id or alias; None: the default version (or all, for verify)


def parse_ref(text: str) -> ModelRef:
    text = text.strip()
    match = _REF.match(text)
    if match:
        return ModelRef(match.group("name"), match.group("ref"))
    if not text or text.endswith("@"):
        raise CliError(
            f"{text!r} names no model: expected NAME, NAME@VERSION or NAME@ALIAS "
            "(NAME is the display name, the model id or projects/P/locations/L/models/ID).",
            USAGE,
        )
    return ModelRef(text, None)


def resolve_model(registry: VertexRegistry, name: str) -> str:
    """The model's resource name; raises CliError(3) when no model has that name."""
    if name.startswith("projects/"):
        return registry.get_model(name).model
    for model_id in dict.fromkeys((name, model_id_for(name))):
        if not MODEL_ID_PATTERN.fullmatch(model_id):
            continue
        try:
            info = registry.get_model(model_id)
        except ModelNotFound:
            continue
        if model_id == name or info.display_name == name:
            return info.model
    found = registry.list_models(name)
    if len(found) > 1:
        names = ", ".join(sorted(m.model for m in found))
        raise CliError(
            f"{len(found)} models are named {name!r} ({names}); name one by its resource name.",
            USAGE,
        )
    if not found:
        raise CliError(
            f"no model named {name!r} in {registry.parent}. Give its display name, model id or "
            "projects/P/locations/L/models/ID, and check GOOGLE_CLOUD_PROJECT (--project) and "
            "VERTEX_LOCATION (--location). Models uploaded before the function was deployed "
            "appear after `registrar backfill gs://BUCKET/MODEL_PREFIX`.",
            3,
        )
    return found[0].model


def get_version(registry: VertexRegistry, model: str, ref: str | None) -> ModelVersionInfo:
    try:
        return registry.get_model(model, ref)
    except ModelNotFound:
        versions = ", ".join(v.version_id for v in sorted_versions(registry, model))
        raise CliError(
            f"{model} has no version or alias {ref!r} (versions: {versions or 'none'}).", 3
        ) from None


def sorted_versions(registry: VertexRegistry, model: str) -> list[ModelVersionInfo]:
    return sorted(registry.list_versions(model), key=lambda v: _version_number(v.version_id))


def source_of(version: ModelVersionInfo) -> tuple[str | None, int | None]:
    """The `gs://` upload and its generation, from the provenance line of the description."""
    match = _SOURCE.search(version.description or "")
    if not match:
        return None, None
    return match.group(1), int(match.group(2))


def record_uri(version: ModelVersionInfo, settings: Settings) -> str | None:
    """Where the registration record of `version` lives (None: not registered by us)."""
    source, _ = source_of(version)
    key = version.labels.get(UPLOAD_KEY_LABEL)
    generation = version.labels.get("source-generation")
    if not source or not key:
        return None
    bucket, _, path = source[len("gs://") :].partition("/")
    if version.labels.get("source-kind") == "saved-model":
        record_key = f"members-{key[:16]}"
    elif generation:
        record_key = f"g{generation}"
    else:
        return None
    return f"gs://{bucket}/{record_name(settings.state_prefix, path, record_key)}"


def read_json(store: ObjectStore, uri: str) -> dict[str, Any] | None:
    bucket, name = split_uri(uri)
    try:
        found = store.read_bytes(bucket, name)
    except PermanentError as exc:
        if exc.code == "not_found":  # the bucket itself is gone
            return None
        raise
    if found is None:
        return None
    try:
        value = json.loads(found[0])
    except json.JSONDecodeError:
        return {"state": "corrupt"}
    return value if isinstance(value, dict) else {"state": "corrupt"}


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/name` -> (bucket, name); CliError(2) for anything else."""
    if not uri.startswith("gs://"):
        raise CliError(f"{uri!r} is not a gs://BUCKET/PATH URI.", USAGE)
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise CliError(f"{uri!r}: {bucket!r} is not a bucket name.", USAGE)
    return bucket, name


def version_summary(version: ModelVersionInfo) -> dict[str, Any]:
    source, generation = source_of(version)
    digest = version.labels.get("content-sha256")
    return {
        "model": version.model,
        "display_name": version.display_name,
        "version_id": version.version_id,
        "aliases": list(version.aliases),
        "created": version.create_time,
        "source_uri": source,
        "source_generation": generation,
        "artifact_uri": version.artifact_uri,
        "digest_prefix": f"sha256:{digest}" if digest else None,
        "labels": dict(version.labels),
    }


def _version_number(version_id: str) -> tuple[int, str]:
    return (int(version_id), "") if version_id.isdigit() else (1 << 62, version_id)
