"""Resource names, field names and wire shapes shared by the store and the routes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from emulators.vertex.errors import invalid

MODEL_NAME = re.compile(
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/models/(?P<model>[^/@:]+)"
    r"(?:@(?P<selector>[^/@:]+))?"
)
UPLOAD_RESPONSE = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse"
UPLOAD_METADATA = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelOperationMetadata"
DELETE_METADATA = "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"
EMPTY = "type.googleapis.com/google.protobuf.Empty"

# Field names of aiplatform.v1.Model / UploadModelRequest (JSON names). Google's front end
# refuses unknown names with 400, so the emulator does too.
MODEL_FIELDS = frozenset(
    [
        "artifactUri",
        "baseModelSource",
        "checkpoints",
        "containerSpec",
        "createTime",
        "dataStats",
        "defaultCheckpointId",
        "deployedModels",
        "description",
        "displayName",
        "encryptionSpec",
        "etag",
        "explanationSpec",
        "labels",
        "metadata",
        "metadataArtifact",
        "metadataSchemaUri",
        "modelSourceInfo",
        "name",
        "originalModelInfo",
        "pipelineJob",
        "predictSchemata",
        "satisfiesPzi",
        "satisfiesPzs",
        "supportedDeploymentResourcesTypes",
        "supportedExportFormats",
        "supportedInputStorageFormats",
        "supportedOutputStorageFormats",
        "trainingPipeline",
        "updateTime",
        "versionAliases",
        "versionCreateTime",
        "versionDescription",
        "versionId",
        "versionUpdateTime",
    ]
)
UPLOAD_FIELDS = frozenset({"model", "modelId", "parent", "parentModel", "serviceAccount"})
# Output-only fields: whatever a client sends here is replaced by the server's value.
OUTPUT_ONLY = frozenset(
    [
        "name",
        "versionId",
        "versionCreateTime",
        "versionUpdateTime",
        "createTime",
        "updateTime",
        "etag",
        "deployedModels",
        "supportedDeploymentResourcesTypes",
        "supportedExportFormats",
        "supportedInputStorageFormats",
        "supportedOutputStorageFormats",
        "trainingPipeline",
        "modelSourceInfo",
        "originalModelInfo",
        "metadataArtifact",
        "dataStats",
        "checkpoints",
        "satisfiesPzs",
        "satisfiesPzi",
    ]
)


def parse_model_name(name: str) -> tuple[str, str, str, str | None]:
    """`projects/P/locations/L/models/M[@sel]` -> (P, L, M, sel)."""
    match = MODEL_NAME.fullmatch(name)
    if not match:
        raise invalid(
            f"Invalid resource name {name!r}: expected projects/P/locations/L/models/MODEL."
        )
    return match["project"], match["location"], match["model"], match["selector"]


def camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(data: dict[str, Any], *, nested: tuple[str, ...] = ()) -> dict[str, Any]:
    """Google accepts snake_case and camelCase field names; normalise to camelCase.

    Map-valued fields (labels) keep their keys; only the keys of `nested` objects are converted.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = camel(key)
        if key in nested and isinstance(value, dict):
            value = camel_keys(value)
        out[key] = value
    return out


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
