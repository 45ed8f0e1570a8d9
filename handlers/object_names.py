"""The canonical object-name rule: when a name, relative to its upload, may name a local file.

A leaf shared by two stages: intake applies it to every object of an upload before download
(`intake/names.py`), validation to the asset file names a SavedModel's graph reads
(`validation/scan/savedmodel.py`: TensorFlow joins them to `assets/`). One rule, one home.

GCS object names are arbitrary strings: `models/m/v1/variables/../saved_model.pb` is an object of
its own, distinct from `models/m/v1/saved_model.pb`, but a file system folds both onto one file.
So a name must be its own normal form:

* no empty, `.` or `..` segment (so no leading, trailing or doubled `/`), no backslash;
* no control character (C0, DEL, C1; NUL included);
* Unicode NFC, and `posixpath.normpath(name) == name`;
* every segment a valid file name on Linux (at most 255 bytes in UTF-8).
"""

from __future__ import annotations

import posixpath
import unicodedata

NAME_MAX = 255  # bytes per path segment on Linux file systems
FIX = (
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
    if any(len(s) > NAME_MAX for s in encoded):
        return f"a path segment is longer than {NAME_MAX} bytes"
    if unicodedata.normalize("NFC", relative) != relative:
        return "it is not in Unicode normal form C (NFC)"
    if posixpath.normpath(relative) != relative:
        return "it is not its own normal form (posixpath.normpath changes it)"
    return None


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0
