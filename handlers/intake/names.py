"""One object <-> one local file: the canonical-name rule and the only way a download creates files.

GCS object names are arbitrary strings: `models/m/v1/variables/../saved_model.pb` is an object of
its own, distinct from `models/m/v1/saved_model.pb`, but a file system (ours while validating,
Vertex's serving container after `gsutil cp -r`) folds both onto one file. So every member name
(relative to its upload) must be its own normal form before it may name a local file:

* no empty, `.` or `..` segment (so no leading, trailing or doubled `/`), no backslash;
* no control character (C0, DEL, C1; NUL included);
* Unicode NFC, and `posixpath.normpath(name) == name`;
* every segment a valid file name on Linux (at most 255 bytes in UTF-8).

Then each local path is built under the upload's work directory, resolved and proven to lie
inside it, and created with `O_CREAT | O_EXCL | O_NOFOLLOW` through directory descriptors opened
with `O_NOFOLLOW`: nothing that already exists (a file, or a symlink planted anywhere on the
way) is followed or overwritten. Two members that would share a path, or where one member's path
is another's directory (`assets/a` and `assets/a/b`), are refused before anything is written.
"""

from __future__ import annotations

import os
import posixpath
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ..errors import Rejected

BAD_NAME = "upload.bad_member_name"
COLLISION = "upload.member_collision"
_NAME_MAX = 255  # bytes per path segment on Linux file systems
_FIX = (
    "Rename the file(s) and upload the model again; object names inside a model upload must be "
    "plain relative paths (no '.', '..', empty segments, backslashes or control characters, "
    "Unicode NFC)."
)


def name_problem(relative: str) -> str | None:
    """Why `relative` may not name a local file, or None when it is canonical."""
    if not relative:
        return "it is empty"
    if "\\" in relative:
        return "it contains a backslash"
    if any(_is_control(ch) for ch in relative):
        return "it contains a control or NUL character"
    segments = relative.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "it has an empty, '.' or '..' path segment"
    try:
        encoded = [s.encode("utf-8") for s in segments]
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)"
    if any(len(s) > _NAME_MAX for s in encoded):
        return f"a path segment is longer than {_NAME_MAX} bytes"
    if unicodedata.normalize("NFC", relative) != relative:
        return "it is not in Unicode normal form C (NFC)"
    if posixpath.normpath(relative) != relative:
        return "it is not its own normal form (posixpath.normpath changes it)"
    return None


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0


def check_names(relatives: Iterable[str], where: str) -> list[str]:
    """Every name canonical, no two sharing a path, none a directory of another; else `Rejected`.

    Returns the names, sorted. Pure: nothing is read or written."""
    names = sorted(relatives)
    for relative in names:
        problem = name_problem(relative)
        if problem:
            raise Rejected(
                f"{where}: the object name {relative!r} cannot be a file of the model because "
                f"{problem}. It was not downloaded. {_FIX}",
                code=BAD_NAME,
            )
    files = set(names)
    if len(files) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise Rejected(
            f"{where}: two objects map to the same file {duplicate!r}. {_FIX}", code=COLLISION
        )
    for relative in names:
        parts = relative.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in files:
                raise Rejected(
                    f"{where}: {parent!r} is a file, but {relative!r} needs it to be a folder; "
                    f"two objects cannot both be written. {_FIX}",
                    code=COLLISION,
                )
    return names


def local_path(root: Path, relative: str) -> Path:
    """The path `relative` names under `root`, proven (resolved) to lie inside `root`."""
    problem = name_problem(relative)
    if problem:
        raise Rejected(f"{relative!r} cannot name a local file: {problem}. {_FIX}", code=BAD_NAME)
    base = root.resolve()
    path = (base / relative).resolve()
    if path == base or not path.is_relative_to(base):
        raise Rejected(f"{relative!r} resolves outside the work directory. {_FIX}", code=BAD_NAME)
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
