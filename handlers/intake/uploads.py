"""From a classified object to a pinned `Upload`: which exact objects (and generations) make it up.

A `.keras` upload is one object. A SavedModel upload is the set of member files of the folder that
holds `saved_model.pb`, complete (index + every data shard), every member read at the generation
listed here, so a concurrent overwrite can never mix two uploads into one version.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from ..errors import Rejected, Superseded, Waiting
from ..gcs.objects import ObjectInfo, ObjectStore
from ..gcs.publish import Source
from ..limits import MAX_GRAPH_BYTES, MAX_INDEX_BYTES
from ..object_names import name_problem
from ..settings import Settings
from .events import ObjectEvent
from .layout import SAVED_MODEL_FILES, SAVED_MODEL_GRAPHS, KerasFile, SavedModelMember, shard_info

_MEMBER_TOP = SAVED_MODEL_FILES
_MEMBER_DIRS = ("variables/", "assets/", "assets.extra/")
# Members that are not part of a SavedModel's completeness (TF writes them, nothing needs them).
OPTIONAL_MEMBERS = frozenset({"fingerprint.pb"})
# `saved_model.pb` bytes -> the asset files the graph reads (None: unparseable). Reading a graph is
# validation's knowledge, so whoever wires the stages hands it in (`ModelValidator.asset_names`):
# intake judges names, never bytes.
AssetNames = Callable[[bytes], frozenset[str] | None]


@dataclass(frozen=True)
class Upload:
    kind: Literal["keras", "saved_model"]
    bucket: str
    source_path: str  # the .keras object name, or the SavedModel folder "a/b/"
    members: tuple[ObjectInfo, ...]  # sorted by name; generations pinned
    trigger: ObjectEvent

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.source_path}"

    @property
    def size(self) -> int:
        return sum(m.size for m in self.members)

    @property
    def generation(self) -> int:
        """The .keras generation, or the newest member generation of a SavedModel."""
        return max(m.generation for m in self.members)

    def relative(self, member: ObjectInfo) -> str:
        if self.kind == "keras":
            return member.name.rsplit("/", 1)[-1]
        return member.name[len(self.source_path) :]

    @cached_property  # asked for by the claim, the record, the labels and the logs
    def upload_key(self) -> str:
        """What the upload *is*: bucket, path and the generation of every member that makes it
        complete. 40 hex chars (a label). Optional files (`fingerprint.pb`) are left out, so one
        that arrives after the directory was registered finds the same record instead of
        registering the same model again."""
        text = "\n".join(
            [
                self.bucket,
                self.source_path,
                *(
                    f"{self.relative(m)}#{m.generation}"
                    for m in self.members
                    if self.relative(m) not in OPTIONAL_MEMBERS
                ),
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    @property
    def source(self) -> Source:
        """The pinned members as plain store values, for publishing (the store knows no upload)."""
        return Source(self.uri, self.bucket, {self.relative(m): m for m in self.members})

    @property
    def record_key(self) -> str:
        """File name of the record: readable for a .keras, a short digest for a directory."""
        if self.kind == "keras":
            return f"g{self.members[0].generation}"
        return f"members-{self.upload_key[:16]}"

    @property
    def metadata(self) -> dict[str, str]:
        """Custom metadata that steers registration (description, aliases)."""
        if self.kind == "keras":
            return self.members[0].metadata
        for member in self.members:
            if self.relative(member) in SAVED_MODEL_GRAPHS:
                return member.metadata
        return {}


def resolve_keras(
    event: ObjectEvent, artifact: KerasFile, store: ObjectStore, settings: Settings
) -> Upload:
    live = store.get_object(event.bucket, artifact.name)
    _check_current(event, live)
    assert live is not None
    return Upload("keras", event.bucket, artifact.name, (live,), event)


def resolve_saved_model(
    event: ObjectEvent,
    artifact: SavedModelMember,
    store: ObjectStore,
    settings: Settings,
    *,
    asset_names: AssetNames,
) -> Upload:
    for directory in artifact.candidate_dirs:
        listing = [
            o
            for o in store.list_objects(event.bucket, directory)
            if _is_member(o.name[len(directory) :])
        ]
        if any(o.name[len(directory) :] in SAVED_MODEL_GRAPHS for o in listing):
            break
    else:
        raise Waiting(f"no saved_model.pb yet beside {event.uri}; the upload is not complete")
    trigger = next((o for o in listing if o.name == event.name), None)
    _check_current(event, trigger)
    _check_complete(directory, listing, event, settings)
    _check_assets(directory, listing, event, store, asset_names)
    return Upload(
        "saved_model", event.bucket, directory, tuple(sorted(listing, key=lambda o: o.name)), event
    )


def _is_member(relative: str) -> bool:
    return relative in _MEMBER_TOP or (
        relative.startswith(_MEMBER_DIRS) and not relative.endswith("/")
    )


def _check_current(event: ObjectEvent, live: ObjectInfo | None) -> None:
    if live is None:
        raise Superseded(f"{event.uri} generation {event.generation} was deleted before processing")
    if live.generation != event.generation:
        raise Superseded(
            f"{event.uri} generation {event.generation} was replaced by generation "
            f"{live.generation}, which has its own event"
        )


def check_size(upload: Upload, settings: Settings) -> None:
    """Refuse before downloading anything: sizes come from the object metadata.

    The whole upload is held to MAX_ARTIFACT_BYTES; the SavedModel files that the function
    process itself parses (outside the sandbox) to their own caps (handlers/limits.py), so that
    they are refused from metadata instead of after a download."""
    size, where = upload.size, upload.uri
    if size > settings.max_artifact_bytes:
        raise Rejected(
            f"{where} is {size:,} bytes; the limit (MAX_ARTIFACT_BYTES) is "
            f"{settings.max_artifact_bytes:,}. Vertex AI accepts at most 10 GB of artifacts.",
            code="too_large",
        )
    if upload.kind != "saved_model":
        return
    caps = {
        "saved_model.pb": (MAX_GRAPH_BYTES, "savedmodel.graph_too_large", "graph file"),
        "variables/variables.index": (MAX_INDEX_BYTES, "savedmodel.index_too_large", "index"),
    }
    for member in upload.members:
        relative = upload.relative(member)
        if relative in caps and member.size > caps[relative][0]:
            limit, code, what = caps[relative]
            raise Rejected(
                f"{where}{relative} is {member.size:,} bytes; the limit for the {what} is "
                f"{limit:,} (an EfficientNetB7 export's saved_model.pb is 7.5 MB, its index "
                "123 KB). Keep weights in variables/, not in graph constants. Nothing was "
                "downloaded.",
                code=code,
            )


def _check_complete(
    directory: str, listing: list[ObjectInfo], event: ObjectEvent, settings: Settings
) -> None:
    names = {o.name[len(directory) :]: o for o in listing}
    where = f"gs://{event.bucket}/{directory}"
    if "variables/variables.index" not in names:
        raise Waiting(f"{where}: variables/variables.index not uploaded yet")
    shards = [
        info
        for rel in names
        if (info := shard_info(rel.removeprefix("variables/"))) and rel.startswith("variables/")
    ]
    if not shards:
        raise Waiting(f"{where}: no variables.data-NNNNN-of-MMMMM shard uploaded yet")
    totals = {total for _, total in shards}
    if len(totals) != 1:
        raise Rejected(
            f"{where}: data shards disagree on their count ({sorted(totals)}); the folder holds "
            "files of two different saves. Upload one SavedModel per folder.",
            code="savedmodel.mixed_shards",
        )
    total = totals.pop()
    missing = sorted(set(range(total)) - {index for index, _ in shards})
    if missing:
        raise Waiting(f"{where}: {len(missing)} of {total} variables data shards not uploaded yet")
    required = [
        o for rel, o in names.items() if rel in SAVED_MODEL_GRAPHS or rel.startswith("variables/")
    ]
    spread = max(o.generation for o in required) - min(o.generation for o in required)
    # Generations are microsecond timestamps: files written far apart are not one upload (e.g. an
    # overwrite in progress over an older SavedModel). Its remaining files will complete it.
    if spread > settings.directory_upload_window_seconds * 1_000_000:
        raise Waiting(
            f"{where}: its files were written {spread / 1e6:.0f} s apart (more than "
            f"DIRECTORY_UPLOAD_WINDOW_SECONDS={settings.directory_upload_window_seconds}); "
            "waiting for the rest of the newer upload"
        )


def _check_assets(
    directory: str,
    listing: list[ObjectInfo],
    event: ObjectEvent,
    store: ObjectStore,
    asset_names: AssetNames,
) -> None:
    """Wait for asset files the graph reads (vocabularies...): they may be uploaded last.

    Runs only for events that find the directory complete by file names. Only the asset names
    are parsed from `saved_model.pb` (`asset_names`: the graph itself stays unparsed bytes), at
    most once per instance and generation: they are cached, so the other member
    events and redeliveries of a finished upload neither read nor parse it again. One over the
    size cap is not read here: the upload is refused from its metadata after the claim
    (`check_size`), with a record."""
    names = {o.name[len(directory) :]: o for o in listing}
    graph = names.get("saved_model.pb")
    if graph is None or graph.size > MAX_GRAPH_BYTES:
        return  # a .pbtxt graph, or too large: validation / check_size decide
    assets = _asset_names_at(graph.bucket, graph.name, graph.generation, store, asset_names)
    if assets is None:
        return  # unparseable: validation rejects it with the specific reason
    # A name that is not canonical ('../x') can never arrive as a member: validation rejects
    # it (savedmodel.bad_asset_name) instead of the upload waiting for it forever.
    missing = sorted(a for a in assets if not name_problem(a) and f"assets/{a}" not in names)
    if missing:
        raise Waiting(
            f"gs://{event.bucket}/{directory}: asset(s) {missing[:3]} the graph reads "
            "are not uploaded yet"
        )


# Keyed by (bucket, name, generation): a generation's bytes never change, so an answer never goes
# stale. Only the names are kept, never the parsed graph.
@functools.lru_cache(maxsize=64)
def _asset_names_at(
    bucket: str, name: str, generation: int, store: ObjectStore, asset_names: AssetNames
) -> frozenset[str] | None:
    """The asset file names `saved_model.pb` (this generation) names; None if it does not parse."""
    return asset_names(store.read_object(ObjectInfo(bucket, name, generation)))
