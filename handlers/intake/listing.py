"""Which model uploads a listing holds: the one answer for backfill and for late arrivals.

An upload is announced by one object: a `.keras` file, or a SavedModel directory's graph
(`saved_model.pb`, else `saved_model.pbtxt`: the object whose finalize event `resolve_saved_model`
pins the directory from). Names only, no I/O: whether a directory is complete is decided when the
upload is resolved.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..gcs.objects import ObjectInfo
from ..settings import Settings
from . import layout

_GRAPHS = layout.SAVED_MODEL_GRAPHS


@dataclass(frozen=True)
class Listed:
    """The uploads in a listing, in listing order (SavedModel directories after the `.keras`)."""

    keras: list[ObjectInfo] = field(default_factory=list)
    saved_models: dict[str, ObjectInfo] = field(default_factory=dict)  # directory -> its graph
    incomplete: list[str] = field(default_factory=list)  # SavedModel files without a graph
    not_models: list[tuple[ObjectInfo, str]] = field(default_factory=list)  # (object, why)

    @property
    def announcing(self) -> list[ObjectInfo]:
        """The object that announces each upload: the `.keras`, or the directory's graph."""
        return [*self.keras, *self.saved_models.values()]

    def directly_in(self, directory: str) -> Listed:
        """Only the uploads whose `.keras` or SavedModel root is `directory` itself."""
        return Listed(
            [o for o in self.keras if posixpath.dirname(o.name) + "/" == directory],
            {d: o for d, o in self.saved_models.items() if d == directory},
            [d for d in self.incomplete if d == directory],
            [],
        )


def uploads_in(listing: Iterable[ObjectInfo], settings: Settings) -> Listed:
    """Every model upload among `listing` (objects under MODEL_PREFIX), classified by name alone.

    Folder placeholders and temporary composite-upload parts are left out silently; any other
    object that is not part of an upload is listed in `not_models` with the reason."""
    listed = Listed()
    members: dict[str, tuple[str, ...]] = {}  # SavedModel member -> its candidate directories
    for obj in listing:
        artifact = layout.classify(obj.name, settings)
        if isinstance(artifact, layout.KerasFile):
            listed.keras.append(obj)
        elif isinstance(artifact, layout.SavedModelMember):
            base = posixpath.basename(obj.name)
            directory = obj.name[: -len(base)]
            if base in _GRAPHS:
                if directory not in listed.saved_models or base == _GRAPHS[0]:
                    listed.saved_models[directory] = obj
            else:
                members[obj.name] = artifact.candidate_dirs
        elif not artifact.reason.startswith(("folder", "temporary")):
            listed.not_models.append((obj, artifact.reason))
    listed.incomplete.extend(
        sorted(
            {
                dirs[-1]
                for dirs in members.values()
                if dirs and not any(d in listed.saved_models for d in dirs)
            }
        )
    )
    return listed
