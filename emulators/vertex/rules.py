"""Vertex AI Model Registry input rules, enforced the way the real service does (400 on violation).

Sources: aiplatform_v1 `types/model.py` / `model_service.py` field docs and the Model Registry
documentation (emulators/vertex/README.md lists each rule's public source). Where Vertex's exact behaviour is not
documented the stricter reading is taken and the docstring says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from emulators.vertex.errors import invalid

MODEL_ID = re.compile(r"[a-z_][a-z0-9_-]{0,62}")
ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
# The regions Vertex AI serves (google-cloud-aiplatform 2.7.0 `constants/base.py`
# SUPPORTED_REGIONS), less `global`: the Model Registry has no global location.
REGIONS = frozenset(
    """
    africa-south1 asia-east1 asia-east2 asia-northeast1 asia-northeast2 asia-northeast3
    asia-south1 asia-south2 asia-southeast1 asia-southeast2 australia-southeast1
    australia-southeast2 europe-central2 europe-north1 europe-north2 europe-southwest1
    europe-west1 europe-west2 europe-west3 europe-west4 europe-west6 europe-west8 europe-west9
    europe-west12 me-central1 me-central2 me-west1 northamerica-northeast1
    northamerica-northeast2 southamerica-east1 southamerica-west1 us-central1 us-east1 us-east4
    us-east5 us-east7 us-south1 us-west1 us-west2 us-west3 us-west4 us-west8
    """.split()
)
PROJECT = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|\d{1,20}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
MAX_DISPLAY_NAME = 128
MAX_LABELS = 64
DEFAULT_ALIAS = "default"
# Names that are model files, not directories: Vertex wants the directory that holds them.
_FILE_SUFFIXES = (
    ".keras",
    ".h5",
    ".hdf5",
    ".pb",
    ".pbtxt",
    ".zip",
    ".tar.gz",
    ".tgz",
    ".pkl",
)


def check_parent(project: str, location: str) -> None:
    if not PROJECT.fullmatch(project):
        raise invalid(f"Invalid project in resource name: {project!r}.")
    if location not in REGIONS:
        raise invalid(
            f"Location {location!r} is not supported: Vertex AI Model Registry serves regions "
            "such as 'us-central1' or 'europe-west4' (there is no global location)."
        )


def check_model_id(model_id: str) -> None:
    if not MODEL_ID.fullmatch(model_id):
        raise invalid(
            f"Invalid model_id {model_id!r}: it must be at most 63 characters of lowercase letters, "
            "digits, '_' or '-', and must not start with a digit or '-'."
        )


def no_unknown(data: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    """Google's front end refuses unknown JSON field names with 400."""
    unknown = sorted(set(data) - known)
    if unknown:
        raise invalid(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': "
            "Cannot find field."
        )


def check_display_name(display_name: Any, what: str = "Model.display_name") -> None:
    if not isinstance(display_name, str) or not display_name:
        raise invalid(f"{what} is required.")
    if len(display_name) > MAX_DISPLAY_NAME:
        raise invalid(
            f"{what} is {len(display_name)} characters; the maximum is {MAX_DISPLAY_NAME}."
        )


def check_labels(labels: Any, what: str = "Model.labels") -> dict[str, str]:
    """Vertex's label rules, the same for every resource; `what` names the field in messages."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise invalid(f"{what} must be a map of strings.")
    if len(labels) > MAX_LABELS:
        raise invalid(f"{what} has {len(labels)} entries; at most {MAX_LABELS} are allowed.")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key):
            raise invalid(
                f"Invalid label key {key!r}: keys are 1-63 lowercase letters, digits, '_' or '-' "
                "and start with a lowercase letter."
            )
        if not isinstance(value, str) or not LABEL_VALUE.fullmatch(value):
            raise invalid(
                f"Invalid value {value!r} for label {key!r}: values are at most 63 lowercase "
                "letters, digits, '_' or '-'."
            )
    return dict(labels)


def check_alias(alias: Any) -> str:
    """A user alias. Starting with a letter also rules out aliases that look like version ids."""
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias):
        raise invalid(
            f"Invalid version alias {alias!r}: it must match [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9]."
        )
    return alias


def check_aliases(aliases: Iterable[Any]) -> list[str]:
    result: list[str] = []
    for alias in aliases:
        if check_alias(alias) not in result:
            result.append(alias)
    return result


def check_artifact_uri(uri: Any) -> None:
    """A `gs://bucket/dir` directory. Names of model files are refused (the stricter reading)."""
    if not isinstance(uri, str) or not uri.startswith("gs://"):
        raise invalid(f"Model.artifact_uri {uri!r} must be a Cloud Storage directory (gs://...).")
    bucket, _, path = uri[len("gs://") :].partition("/")
    if not BUCKET.fullmatch(bucket):
        raise invalid(f"Model.artifact_uri {uri!r} does not name a valid bucket.")
    if path.rstrip("/").lower().endswith(_FILE_SUFFIXES):
        raise invalid(
            f"Model.artifact_uri {uri!r} names a file; it must be the directory containing the "
            "model artifacts (e.g. the directory holding saved_model.pb)."
        )


def check_container_spec(model: Mapping[str, Any]) -> None:
    """This emulator serves custom models only, which always need a serving container."""
    spec = model.get("containerSpec") or {}
    if not isinstance(spec, Mapping) or not spec.get("imageUri"):
        where = " when artifact_uri is set" if model.get("artifactUri") else ""
        raise invalid(f"Model.container_spec.image_uri is required{where}.")
