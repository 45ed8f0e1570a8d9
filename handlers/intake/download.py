"""Pinned objects into a new local directory: the one way the function downloads an upload.

Every name is checked first (`names.check_names`: canonical, no two onto one file), so a bad name
is a rejection before a byte is read; each file is created inside the new directory with
O_EXCL | O_NOFOLLOW (`names.create_file`); each download is hashed and held to the object's
metadata by the store.
"""

from __future__ import annotations

from pathlib import Path

from ..gcs.objects import Digests, ObjectInfo, ObjectStore
from . import names


def fetch(
    store: ObjectStore, files: dict[str, ObjectInfo], root: Path, where: str
) -> dict[str, Digests]:
    """`files` (relative name -> pinned object) into the new directory `root`; their digests."""
    names.check_names(list(files), where)
    root.mkdir(mode=0o700)
    digests: dict[str, Digests] = {}
    for relative, obj in files.items():
        with names.create_file(root, relative) as handle:
            digests[relative] = store.download_to(obj, handle)
    return digests
