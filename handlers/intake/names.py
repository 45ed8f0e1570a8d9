"""One object <-> one local file: the only way a download creates files.

GCS object names are arbitrary strings, but a file system (ours while validating, Vertex's serving
container after `gsutil cp -r`) folds `variables/../saved_model.pb` onto `saved_model.pb`. So every
member name (relative to its upload) must pass the canonical-name rule (handlers/object_names.py,
shared with validation) before it may name a local file.

Then each local path is built under the upload's work directory, resolved and proven to lie
inside it, and created with `O_CREAT | O_EXCL | O_NOFOLLOW` through directory descriptors opened
with `O_NOFOLLOW`: nothing that already exists (a file, or a symlink planted anywhere on the
way) is followed or overwritten. Two members that would share a path, or where one member's path
is another's directory (`assets/a` and `assets/a/b`), are refused before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import Rejected
from ..object_names import FIX, name_problem

BAD_NAME = "upload.bad_member_name"
COLLISION = "upload.member_collision"


def check_names(relatives: Iterable[str], where: str) -> list[str]:
    """Every name canonical, no two sharing a path, none a directory of another; else `Rejected`.

    Returns the names, sorted. Pure: nothing is read or written."""
    names = sorted(relatives)
    for relative in names:
        problem = name_problem(relative)
        if problem:
            raise Rejected(
                f"{where}: the object name {relative!r} cannot be a file of the model because "
                f"{problem}. It was not downloaded. {FIX}",
                code=BAD_NAME,
            )
    files = set(names)
    if len(files) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise Rejected(
            f"{where}: two objects map to the same file {duplicate!r}. {FIX}", code=COLLISION
        )
    for relative in names:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise Rejected(
                    f"{where}: {parent!r} is a file, but {relative!r} needs it to be a folder; "
                    f"two objects cannot both be written. {FIX}",
                    code=COLLISION,
                )
    return names


def local_path(root: Path, relative: str) -> Path:
    """The path `relative` names under `root`, proven (resolved) to lie inside `root`."""
    problem = name_problem(relative)
    if problem:
        raise Rejected(f"{relative!r} cannot name a local file: {problem}. {FIX}", code=BAD_NAME)
    base = root.resolve()
    path = (base / relative).resolve()
    if path == base or not path.is_relative_to(base):
        raise Rejected(f"{relative!r} resolves outside the work directory. {FIX}", code=BAD_NAME)
    return path


def create_file(root: Path, relative: str) -> BinaryIO:
    """A new, empty file at `relative` under `root`, opened for writing.

    `root` must exist. Intermediate directories are created (mode 0700) and entered with
    `O_NOFOLLOW`, and the file is created with `O_EXCL | O_NOFOLLOW` (mode 0600): an existing
    file, directory or symlink anywhere on the way makes this fail instead of being followed or
    overwritten."""
    local_path(root, relative)  # canonical and inside root, before anything is created
    *parents, leaf = relative.split("/")
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root.resolve(), flags_dir)
    try:
        for segment in parents:
            try:
                os.mkdir(segment, 0o700, dir_fd=fd)
            except FileExistsError:
                pass  # entered with O_NOFOLLOW below: a symlink or a file fails there
            child = os.open(segment, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = child
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        file_fd = os.open(leaf, flags, 0o600, dir_fd=fd)
    finally:
        os.close(fd)
    return os.fdopen(file_fd, "wb")
