"""Which folder a model belongs to, so that one folder cannot take over another folder's model.

Write access to a bucket can be granted per folder (GCS managed folders). Custom metadata
`display_name` lets an upload name any model, so without a rule an upload under `models/team-a/`
could become a new version — and the `default` — of `team-b`'s model. The rule: a model belongs to
the folder its first version came from — the top-level folder under MODEL_PREFIX, or the prefix
itself for a flat upload (a `.keras` or a SavedModel folder directly under it, as in the
tutorial) — and an upload from another folder that names it is rejected
(`name.owned_by_another_folder`) before anything is downloaded, unless
ALLOW_CROSS_FOLDER_MODELS=true.

The owner is recorded on the model as the Vertex label `registrar-folder` on every version the
registrar uploads (so on the model too: Vertex keeps a model's first-version labels). Label values
are at most 63 of `[a-z0-9_-]`, so the value is the folder's name made label-safe (40 characters at
most, `prefix` for the prefix itself) and a hash of its full `gs://bucket/prefix/folder/` name:
readable in the console, and two folders never share one. With ALLOW_CROSS_FOLDER_MODELS=true a
version from another folder still carries the owner's value: the label says whose model it is, the
version's description says where the upload came from.

One exception: a model first registered by flat uploads (owned by the prefix) also takes versions
from the folder named after it, `MODEL_PREFIX<name>/` — where `models/<name>/<version>/` uploads
of it go, so flat uploads and that folder can both carry one model (the tutorial's flat versions,
then a folder upload that can have a late `metrics.json`, which flat uploads cannot). A folder
holds only what those who may write under it put there.

A model with no `registrar-folder` label on any version (registered before this rule, or by
hand) is claimed by the first upload registered into it under the rule: there is no record of its
first folder to go by (documented in the README's folder rule).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from ..errors import PermanentError
from ..settings import Settings
from .interface import ModelRegistry, VersionRequest

FOLDER_LABEL = "registrar-folder"
CODE = "name.owned_by_another_folder"
_READABLE_CHARS = 40
_HASH_CHARS = 20  # 80 bits of sha256


def folder_of(source_path: str, settings: Settings) -> str:
    """The folder an upload comes from, as an object-name prefix: `models/team-a/` for anything
    under `models/team-a/…/`, `models/` itself for a flat upload (`models/my_model_v1.keras`, or a
    SavedModel folder `models/my_model_v1/`). The same flat/not-flat split as the naming rule
    (handlers/intake/layout.py `display_name_for`)."""
    prefix = settings.model_prefix
    segments = source_path[len(prefix) :].strip("/").split("/")
    return prefix if len(segments) == 1 else f"{prefix}{segments[0]}/"


def folder_label(bucket: str, folder: str, settings: Settings) -> str:
    """The `registrar-folder` label value of `gs://bucket/folder`."""
    name = folder[len(settings.model_prefix) :].rstrip("/")
    readable = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")[:_READABLE_CHARS]
    digest = hashlib.sha256(f"gs://{bucket}/{folder}".encode()).hexdigest()[:_HASH_CHARS]
    return f"{readable.rstrip('-_') or 'prefix'}-{digest}"


def owner_label(
    registry: ModelRegistry,
    display_name: str,
    *,
    bucket: str,
    source_path: str,
    uri: str,
    settings: Settings,
) -> str:
    """The `registrar-folder` value the upload's version must carry; raises PermanentError
    (`name.owned_by_another_folder`) when the model named `display_name` belongs to another folder
    and ALLOW_CROSS_FOLDER_MODELS is off. A new model, or one with no owner yet, becomes this
    folder's."""
    folder = folder_of(source_path, settings)
    mine = folder_label(bucket, folder, settings)
    owner = registry.model_label(display_name, FOLDER_LABEL)
    if owner is None or owner == mine:
        return mine
    if folder == f"{settings.model_prefix}{display_name}/" and owner == folder_label(
        bucket, settings.model_prefix, settings
    ):  # a flat-first model also takes versions from its namesake folder, models/<name>/
        return owner
    if settings.allow_cross_folder_models:
        return owner  # the label keeps naming the model's owner
    raise PermanentError(
        f"{uri}: the model {display_name!r} belongs to another folder ({FOLDER_LABEL}={owner}; "
        f"this upload's folder gs://{bucket}/{folder} is {mine}): a model takes versions only "
        "from the folder its first version came from. Upload it under that folder, give it "
        "another name (custom metadata `display_name`, or the folder name), or have the operator "
        "set ALLOW_CROSS_FOLDER_MODELS=true.",
        code=CODE,
    )


def labelled(request: VersionRequest, label: str) -> VersionRequest:
    """`request` carrying the model's folder label."""
    return replace(request, labels={**request.labels, FOLDER_LABEL: label})
