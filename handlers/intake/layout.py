"""Object name -> what kind of upload it belongs to, and the model's display name.

Pure functions over names: no I/O, so every event is classified in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.errors import PermanentError
from handlers.settings import Settings

SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "fingerprint.pb")
_MEMBER_DIRS = ("variables", "assets", "assets.extra")
_SHARD = re.compile(r"^variables\.data-(\d{5})-of-(\d{5})$")
# Temporary objects of parallel composite uploads (gcloud storage and gsutil); they fire events too.
_COMPOSITE_TEMP = (
    "gcloud/tmp/parallel_composite_uploads/",
    "gsutil/tmp/parallel_composite_uploads/",
)
_IGNORED_SUFFIXES = {
    ".h5": "legacy HDF5 full-model files are not accepted (they bypass Keras safe_mode); "
    "save the model as .keras or a SavedModel",
    ".hdf5": "legacy HDF5 full-model files are not accepted (they bypass Keras safe_mode); "
    "save the model as .keras or a SavedModel",
}
MAX_DISPLAY_NAME = 128


@dataclass(frozen=True)
class KerasFile:
    name: str  # full object name of the .keras file


@dataclass(frozen=True)
class SavedModelMember:
    name: str  # full object name of the member that fired the event
    candidate_dirs: tuple[str, ...]  # possible SavedModel directories ("a/b/"), deepest first


@dataclass(frozen=True)
class NotAModel:
    reason: str


Artifact = KerasFile | SavedModelMember | NotAModel


def classify(name: str, settings: Settings) -> Artifact:
    """Decide what an object under the watched prefix is. Call only for names under the prefix."""
    if name.endswith("/"):
        return NotAModel("folder placeholder object")
    if any(marker in name for marker in _COMPOSITE_TEMP) or name.endswith(".gstmp"):
        return NotAModel("temporary part of a parallel composite upload")
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    if lower.endswith(".keras"):
        return KerasFile(name)
    for suffix, why in _IGNORED_SUFFIXES.items():
        if lower.endswith(suffix):
            return NotAModel(why)
    segments = name.split("/")
    candidates: list[str] = []
    if base in SAVED_MODEL_FILES:
        candidates.append("/".join(segments[:-1]) + "/")
    # A member inside variables/, assets/ or assets.extra/: the SavedModel is the folder above it.
    # Asset trees may nest, so every such segment is a candidate; the pipeline resolves which one
    # actually holds saved_model.pb.
    for index in range(len(segments) - 2, 0, -1):
        if segments[index] in _MEMBER_DIRS:
            if segments[index] == "variables" and index != len(segments) - 2:
                continue  # variables/ is flat
            candidates.append("/".join(segments[:index]) + "/")
    prefix_depth = settings.model_prefix.count("/")
    candidates = [c for c in candidates if c.count("/") > prefix_depth]
    if candidates:
        return SavedModelMember(name, tuple(candidates))
    return NotAModel(f"{base!r} is neither a .keras file nor part of a SavedModel directory")


def is_watched(name: str, settings: Settings) -> bool:
    return name.startswith(settings.model_prefix)


@dataclass(frozen=True)
class ModelName:
    display_name: str
    version_hint: str | None  # the `version` group of MODEL_PATH_PATTERN, or the path's 2nd segment


def display_name_for(source: str, settings: Settings) -> ModelName:
    """Display name from the upload's path (object name of a .keras, or SavedModel dir "a/b/").

    Raises PermanentError(code="bad_display_name") instead of mangling a name Vertex would refuse.
    """
    pattern = settings.model_path_pattern
    if pattern is not None:
        match = pattern.search(source)
        if match is None or not match.group("model"):
            raise PermanentError(
                f"{source!r} does not match MODEL_PATH_PATTERN {pattern.pattern!r}; "
                "move the upload to a path the pattern names, or change the pattern",
                code="bad_display_name",
            )
        version = match.groupdict().get("version")
        return ModelName(_checked(match.group("model"), source), version or None)
    relative = source[len(settings.model_prefix) :].strip("/")
    segments = relative.split("/")
    if len(segments) == 1:  # models/churn.keras -> churn
        stem = segments[0]
        if stem.lower().endswith(".keras"):
            stem = stem[: -len(".keras")]
        return ModelName(_checked(stem, source), None)
    version = segments[1] if len(segments) > 2 or source.endswith("/") else None
    return ModelName(_checked(segments[0], source), version)


def _checked(name: str, source: str) -> str:
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif len(name) > MAX_DISPLAY_NAME:
        problem = f"it is {len(name)} characters long; Vertex allows at most {MAX_DISPLAY_NAME}"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = "it contains control characters"
    elif name != name.strip():
        problem = "it starts or ends with whitespace"
    if problem:
        raise PermanentError(
            f"cannot name a Vertex model after {source!r}: display name {name!r} is invalid "
            f"because {problem}. Rename the folder (or set MODEL_PATH_PATTERN).",
            code="bad_display_name",
        )
    return name


def shard_info(file_name: str) -> tuple[int, int] | None:
    """`variables.data-00001-of-00004` -> (1, 4)."""
    match = _SHARD.match(file_name)
    return (int(match.group(1)), int(match.group(2))) if match else None
