"""Object name -> what kind of upload it belongs to, and the model's display name.

Pure functions over names: no I/O, so every event is classified in microseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import PermanentError
from ..settings import Settings

# The one home of the SavedModel file names: the graph (either form) and the optional fingerprint.
SAVED_MODEL_GRAPHS = ("saved_model.pb", "saved_model.pbtxt")  # preferred first
SAVED_MODEL_FILES = (*SAVED_MODEL_GRAPHS, "fingerprint.pb")
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


@dataclass(frozen=True)
class MetricsFile(NotAModel):
    """`metrics.json` beside a `.keras` or at a SavedModel's root: not a model, but the metrics of
    the upload(s) in `directory` (handlers/intake/metrics.py); never a SavedModel member."""

    name: str
    directory: str  # "a/b/"


METRICS_FILE = "metrics.json"


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
    if base == METRICS_FILE:
        directory = "/".join(segments[:-1]) + "/"
        if directory.count("/") > prefix_depth:
            return MetricsFile(
                f"the metrics of the model upload(s) in {directory}", name, directory
            )
        return NotAModel("metrics.json directly under MODEL_PREFIX names no single upload")
    return NotAModel(f"{base!r} is neither a .keras file nor part of a SavedModel directory")


def is_watched(name: str, settings: Settings) -> bool:
    return name.startswith(settings.model_prefix)


# The version token a flat upload's stem may end with (a `.keras` directly under the prefix, or a
# SavedModel folder directly under it): the token is cut off the display name and kept as the
# version hint, so `my_model_v1.keras` and `my_model_v2.keras` are versions 1 and 2 of `my_model`.
#   separator `_`, `-` or `.` then `v`/`V` + digits (dotted parts allowed): _v1  -v2  .v3  _v1.2
#   separator `_`, `-` or `.` then a calendar date, ISO or compact:        _2026-11-26  -20261126
#   `@` then any token (an explicit version marker):                       @4  @v4  @rc1
# A bare number after `_`/`-`/`.` is part of the name (`resnet-50`, `gpt-2`, `llama-3.1`), as are
# digits without a separator (`resnet50`): write `_v2` or `@2` to mark a version.
STEM_VERSION = re.compile(
    r"""
    ^(?P<name>.*?[^._@-])                      # the display name: ends with a non-separator
    (?:
        [._-](?P<version>
            [vV][0-9]+(?:\.[0-9]+)*                                   # v1, V2, v1.2.3
          | (?:19|20)[0-9]{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])  # 2026-11-26
          | (?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])    # 20261126
        )
      | @(?P<tagged>[A-Za-z0-9][A-Za-z0-9._-]*)  # my_model@4, my_model@v4, my_model@2026-11-26
    )$
    """,
    re.VERBOSE,
)
# Object custom metadata naming the model explicitly (on the .keras, or on saved_model.pb).
DISPLAY_NAME_METADATA = "display_name"


@dataclass(frozen=True)
class ModelName:
    display_name: str
    version_hint: str | None  # the `version` group of MODEL_PATH_PATTERN, the path's 2nd segment,
    # or the version token cut off a flat upload's stem
    named_by: str = "path"  # "path", "metadata" (custom metadata display_name) or "pattern"


def split_stem(stem: str) -> tuple[str, str | None]:
    """`my_model_v1` -> ("my_model", "v1"); a stem without a version token is kept whole."""
    match = STEM_VERSION.match(stem)
    if match is None:
        return stem, None
    return match.group("name"), match.group("version") or match.group("tagged")


def display_name_for(
    source: str, settings: Settings, metadata: Mapping[str, str] | None = None
) -> ModelName:
    """Display name of an upload (object name of a .keras, or SavedModel dir "a/b/").

    In order: `MODEL_PATH_PATTERN` when set; else the upload's custom metadata `display_name`
    (`metadata`: the .keras object's, or saved_model.pb's); else the path — the first segment
    after the prefix, or for a flat upload (`models/my_model_v1.keras`, `models/my_model_v1/`) its
    stem less a trailing version token (`STEM_VERSION`).
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
        return ModelName(_checked(match.group("model"), source), version or None, "pattern")
    relative = source[len(settings.model_prefix) :].strip("/")
    segments = relative.split("/")
    if len(segments) == 1:  # models/my_model_v1.keras -> my_model (v1); models/churn/ -> churn
        stem = segments[0]
        if stem.lower().endswith(".keras") and not source.endswith("/"):
            stem = stem[: -len(".keras")]
        name, version = split_stem(stem)
    else:
        name = segments[0]
        version = segments[1] if len(segments) > 2 or source.endswith("/") else None
    explicit = (metadata or {}).get(DISPLAY_NAME_METADATA)
    if explicit is not None:
        return ModelName(_checked(explicit, source, metadata=True), version, "metadata")
    return ModelName(_checked(name, source), version)


def _checked(name: str, source: str, *, metadata: bool = False) -> str:
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif len(name) > MAX_DISPLAY_NAME:
        problem = f"it is {len(name)} characters long; Vertex allows at most {MAX_DISPLAY_NAME}"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        problem = "it contains control characters"
    elif name != name.strip():
        problem = "it starts or ends with whitespace"
    elif any(0xD800 <= ord(ch) <= 0xDFFF for ch in name):
        problem = "it is not valid Unicode text (a lone surrogate)"
    if problem:
        where = (
            f"the custom metadata {DISPLAY_NAME_METADATA!r} of {source!r}"
            if metadata
            else repr(source)
        )
        fix = (
            f"Fix the object's custom metadata {DISPLAY_NAME_METADATA!r} and upload again."
            if metadata
            else "Rename the folder (or set MODEL_PATH_PATTERN)."
        )
        raise PermanentError(
            f"cannot name a Vertex model after {where}: display name {name!r} is invalid "
            f"because {problem}. {fix}",
            code="bad_display_name",
        )
    return name


def shard_info(file_name: str) -> tuple[int, int] | None:
    """`variables.data-00001-of-00004` -> (1, 4)."""
    match = _SHARD.match(file_name)
    return (int(match.group(1)), int(match.group(2))) if match else None
