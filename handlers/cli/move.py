"""`registrar move-image`: serve registered versions with another image, as new versions.

Vertex does not let a version's container change, so a version is *moved* by registering its
already validated artifact again, as a new version of the same model, with the new serving image:
- `verify` first (the bytes are the registered ones, re-hashed against the registration record
  and manifest); nothing is validated again, nothing is read from the upload path;
- in the layout the new image loads: TF Serving needs `<artifact_uri>/1/saved_model.pb`, so a
  flat artifact is server-side copied (pinned to the verified generations, CRC32C checked against
  the manifest) to its content-addressed `tfs-sha256-…/1/` sibling; a prebuilt image needs the flat
  one, which every version moved from it already has;
- lineage: the new version keeps the original's labels and description, plus
  `registrar-moved-from` (the original version id) and `registrar-serving-image` (a hash of the
  image URI); the description names the original version;
- idempotent: a version carrying both labels is the earlier move, and is kept (aliases are still
  moved when asked). Aliases, `default` included, move only with `--move-aliases`;
- paced: every UploadModel waits for a slot under `--uploads-per-minute` (Vertex: 60 per minute
  per region, shared with the function).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import serving_images
from ..errors import PermanentError, SettingsError
from ..gcs.objects import ObjectStore, PreconditionFailed
from ..gcs.publish import MANIFEST_NAME, NUMBERED_SUFFIX, read_manifest
from ..registry.interface import ModelVersionInfo, VersionRequest
from ..registry.labels import MANAGED_BY, MANAGED_BY_LABEL
from ..registry.vertex import VertexRegistry
from . import backfill as backfill_lib
from .context import Context
from .models import get_version, parse_ref, read_json, record_uri, resolve_model, sorted_versions
from .output import FAILED, OK, CliError
from .verify import verify as verify_artifact

MOVED_FROM_LABEL = "registrar-moved-from"
IMAGE_LABEL = "registrar-serving-image"


def image_label(image: str) -> str:
    """A label value for an image URI (URIs do not fit label values)."""
    return hashlib.sha256(image.encode()).hexdigest()[:16]


@dataclass
class Move:
    version: str  # MODEL@VERSION moved (or not)
    state: str  # moved, already-moved, up-to-date, failed
    new_version: str | None = None
    artifact_uri: str | None = None
    aliases_moved: list[str] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def move_image(ctx: Context) -> int:
    args, out, settings = ctx.args, ctx.out, ctx.settings
    image = args.serving_image or settings.serving_image
    status = serving_images.check(image)
    if not status.ok:
        raise CliError(f"refusing to move versions to {image}: {status.message}", FAILED)
    declared = None if args.serving_image else settings.serving_tf_version
    try:
        serving_images.resolve_tf_version(image, declared)
    except SettingsError as exc:  # a settings problem of the target image: say what to pass
        raise CliError(f"--serving-image {image}: {exc}", 2) from None
    pacer = backfill_lib.Pacer(args.uploads_per_minute, timer=backfill_lib.TIMER)
    registry = backfill_lib.pace_uploads(ctx.registry, pacer)
    targets = _targets(registry, args)
    moves: list[Move] = []
    for number, version in enumerate(targets, 1):
        try:
            move = move_one(
                ctx.store, registry, ctx, version, image, move_aliases=args.move_aliases
            )
        except PermanentError as exc:
            move = Move(version.version_name, "failed", detail=str(exc))
        moves.append(move)
        out.say(_line(number, len(targets), move))
    failed = [m for m in moves if m.state == "failed"]
    if out.json_mode:
        out.data(
            {
                "serving_image": image,
                "ok": not failed,
                "uploads": pacer.submissions,
                "moves": [m.as_dict() for m in moves],
            }
        )
    return FAILED if failed else OK


def _line(number: int, total: int, move: Move) -> str:
    head = f"[{number}/{total}] {move.version}: {move.state}"
    if move.new_version:
        head += f" -> {move.new_version}"
    if move.aliases_moved:
        head += f" (aliases moved: {', '.join(move.aliases_moved)})"
    return head + (f": {move.detail}" if move.detail else "")


def _targets(registry: VertexRegistry, args: Any) -> list[ModelVersionInfo]:
    """The versions to move: one (NAME@VERSION), a model's (NAME), or every registrar model's
    (--all); never a version that is itself a move."""
    if args.all == bool(args.ref):
        raise CliError("name a model (NAME or NAME@VERSION) or give --all, not both", 2)
    if args.all:
        models = registry.list_models(labels={MANAGED_BY_LABEL: MANAGED_BY})
        versions = [v for m in models for v in sorted_versions(registry, m.model)]
    else:
        ref = parse_ref(args.ref)
        model = resolve_model(registry, ref.name)
        if ref.ref:
            return [get_version(registry, model, ref.ref)]
        versions = sorted_versions(registry, model)
    return [v for v in versions if MOVED_FROM_LABEL not in v.labels]


def move_one(
    store: ObjectStore,
    registry: VertexRegistry,
    ctx: Context,
    version: ModelVersionInfo,
    image: str,
    *,
    move_aliases: bool,
) -> Move:
    """Register `version`'s verified artifact again with `image`, once; see the module doc."""
    name = version.version_name
    if version.serving_image == image:
        return Move(name, "up-to-date", detail="already served by this image")
    label = image_label(image)
    earlier = [
        v
        for v in registry.list_versions(
            version.model, labels={MOVED_FROM_LABEL: version.version_id, IMAGE_LABEL: label}
        )
        if v.labels.get(MOVED_FROM_LABEL) == version.version_id
    ]
    if earlier:
        moved = earlier[0]
        result = Move(name, "already-moved", moved.version_name, moved.artifact_uri)
    else:
        location = record_uri(version, ctx.settings)
        record = read_json(store, location) if location else None
        checked = verify_artifact(
            store,
            ctx.settings,
            version=name,
            artifact_uri=version.artifact_uri,
            record=record,
            label_digest=version.labels.get("content-sha256"),
        )
        if not checked.ok:
            problems = "; ".join(f"{p.kind} {p.path}: {p.detail}" for p in checked.problems)
            raise PermanentError(
                f"not moved: its artifact is not what was registered ({problems}). "
                "`registrar verify` tells more."
            )
        artifact = _in_layout(store, version.artifact_uri, serving_images.numbered_layout(image))
        request = VersionRequest(
            display_name=version.display_name,
            artifact_uri=artifact,
            serving_image=image,
            description=(
                f"Moved from version {version.version_id} to serving image {image} by "
                f"registrar move-image (same validated artifact).\n\n{version.description}"
            )[:4000],
            labels={**version.labels, MOVED_FROM_LABEL: version.version_id, IMAGE_LABEL: label},
            make_default=False,
        )
        new = registry.upload_model(request, parent_model=version.model)
        result = Move(name, "moved", new.version_name, artifact)
    if move_aliases and version.aliases:
        current = registry.get_model(version.model, version.version_id)  # aliases now
        aliases = list(current.aliases)
        if aliases:
            registry.merge_version_aliases(result.new_version or "", add=aliases)
            result.aliases_moved = aliases
    return result


def _in_layout(store: ObjectStore, artifact_uri: str, numbered: bool) -> str:
    """The artifact directory in the layout the image loads; a flat one is copied (server-side,
    pinned, checked) into the numbered layout's content-addressed sibling."""
    bucket, _, directory = artifact_uri.removeprefix("gs://").partition("/")
    directory = directory.rstrip("/") + "/"
    is_numbered = read_manifest(store, bucket, directory) is None
    if is_numbered == numbered:
        return artifact_uri
    if not numbered:
        raise PermanentError(
            f"{artifact_uri} is in TF Serving's numbered layout; a Vertex prebuilt image needs "
            "saved_model.pb at the top. Moving back to a prebuilt image is not supported."
        )
    parent, _, leaf = directory.rstrip("/").rpartition("/")
    base = f"{parent}/tfs-{leaf}/"
    target = base + NUMBERED_SUFFIX.lstrip("/")
    manifest = read_manifest(store, bucket, directory) or {}
    existing = read_manifest(store, bucket, target)
    if existing is not None:
        if existing.get("source_digest") != manifest.get("source_digest"):
            raise PermanentError(f"gs://{bucket}/{target} holds another artifact; not moved.")
        return f"gs://{bucket}/{base}"
    crc = manifest.get("crc32c") or {}
    for obj in store.list_objects(bucket, directory):
        relative = obj.name[len(directory) :]
        if relative == MANIFEST_NAME:
            continue
        if relative not in crc or obj.crc32c != crc[relative]:
            raise PermanentError(f"{obj.uri} is not the verified file; not moved.")
        try:
            copied = store.copy_object(obj, target + relative)
        except PreconditionFailed:  # an interrupted earlier move: compare what is there
            copied = store.get_object(bucket, target + relative)
        if copied is None or copied.crc32c != crc[relative]:
            raise PermanentError(f"the copy of {obj.uri} differs from the verified file.")
    try:  # written last: its presence means the directory is complete
        store.write_bytes(
            bucket,
            target + MANIFEST_NAME,
            json.dumps(manifest, indent=2, sort_keys=True).encode(),
            if_generation_match=0,
        )
    except PreconditionFailed:  # a concurrent move finished it
        if (read_manifest(store, bucket, target) or {}).get("files") != manifest.get("files"):
            raise PermanentError(
                f"gs://{bucket}/{target} holds another artifact; not moved."
            ) from None
    return f"gs://{bucket}/{base}"


def add_command(command: Any, env: Any, uploads_per_minute: Any) -> None:
    """The `move-image` sub-command (handlers/cli/app.py's `command` factory)."""
    sub = command(
        "move-image",
        "re-register versions with another serving image (new versions of the same models; "
        "lineage to the originals; idempotent)",
    )
    sub.add_argument("ref", metavar="NAME[@VERSION]", nargs="?")
    sub.add_argument("--all", action="store_true", help="every model the registrar registered")
    sub.add_argument(
        "--serving-image",
        default=env.get("REGISTRAR_SERVING_IMAGE") or None,
        help="the image to move to [env REGISTRAR_SERVING_IMAGE, default "
        "SERVING_CONTAINER_IMAGE_URI]",
    )
    sub.add_argument(
        "--move-aliases",
        action="store_true",
        help="move each original's aliases (default included) to its new version",
    )
    sub.add_argument(
        "--uploads-per-minute",
        type=uploads_per_minute,
        default=env.get("REGISTRAR_UPLOADS_PER_MINUTE")
        or str(backfill_lib.DEFAULT_UPLOADS_PER_MINUTE),
        help="at most N UploadModel calls in any minute; Vertex allows 60 per region, shared "
        f"with the function [env REGISTRAR_UPLOADS_PER_MINUTE, 1-{backfill_lib.MAX_UPLOADS_PER_MINUTE}, "
        f"default {backfill_lib.DEFAULT_UPLOADS_PER_MINUTE}]",
    )


COMMANDS = {"move-image": move_image}
