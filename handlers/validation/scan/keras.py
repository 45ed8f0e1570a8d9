"""Static checks of a `.keras` archive without importing TensorFlow or Keras.

Checks the zip container (members, names, sizes, ratios), parses `config.json` and
`metadata.json`, walks the config against the allowlist (`keras_config_scan`) and inspects the
HDF5 weights in place (`h5_scan`).
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import Rejected
from ...limits import (
    MAX_CONFIG_JSON_BYTES,
    MAX_JSON_VALUES,
    MAX_METADATA_JSON_BYTES,
)
from ...settings import Settings
from . import zip_framing as framing
from .h5 import scan_h5_member
from .keras_config import scan_keras_config
from .keras_hub_allowlist import KERAS_HUB_OBJECTS

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WEIGHTS = "model.weights.h5"
_REQUIRED = ("config.json", "metadata.json", _WEIGHTS)
_LOCAL_SIG = b"PK\x03\x04"
_RATIO_FLOOR = 1024**2  # tiny members compress well legitimately; ratios matter above this
_FIX = "Save the model again with model.save('model.keras') (Keras 3) and upload that file."


@dataclass(frozen=True)
class KerasScan:
    keras_version: str
    members: int
    uncompressed_bytes: int
    notes: tuple[str, ...]


def scan_keras_file(path: Path, settings: Settings) -> KerasScan:
    """Raise `Rejected` with a `keras.*` code unless `path` passes every static check."""
    size = path.stat().st_size
    if size > settings.max_artifact_bytes:
        raise Rejected(
            f"The .keras file is {size} bytes; the limit is {settings.max_artifact_bytes} "
            "(MAX_ARTIFACT_BYTES).",
            code="keras.too_large",
        )
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        raise Rejected(
            "This is a legacy HDF5 (.h5) full-model file, not a Keras 3 .keras zip archive. HDF5 "
            f"model loading ignores safe_mode (CVE-2025-9905), so it is not accepted. {_FIX}",
            code="keras.legacy_h5",
        )
    if not head.startswith(b"PK"):
        raise Rejected(
            f"Expected a .keras zip archive (starting with 'PK'), found {head[:4]!r}. {_FIX}",
            code="keras.not_a_zip",
        )
    if not head.startswith(_LOCAL_SIG):
        raise Rejected(
            f"The .keras file starts with {head[:4]!r}, not a zip local file header: something "
            f"was put in front of the archive. {_FIX}",
            code="keras.bad_zip_framing",
        )
    with path.open("rb") as f:
        directory = framing.read_directory(f, size, settings.max_archive_members)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise Rejected(
            f"The .keras file starts like a zip archive but cannot be read ({exc}); it is "
            f"probably truncated or the upload was incomplete. {_FIX}",
            code="keras.truncated_zip",
        ) from None
    with zf:
        total = _check_members(zf, settings)
        with path.open("rb") as f:
            framing.check_contiguous(f, zf.infolist(), directory)
        config = _read_json(zf, "config.json")
        metadata = _read_json(zf, "metadata.json")
        if not isinstance(metadata, dict) or not str(metadata.get("keras_version", "")):
            raise Rejected(
                "metadata.json has no 'keras_version'; this is not a Keras 3 archive. " + _FIX,
                code="keras.bad_metadata",
            )
        version = str(metadata["keras_version"])
        # The format before the config: a Keras 2 file names Keras 2 classes, and refusing it
        # as "not on the allowlist" would send its owner the wrong way.
        if version.startswith("2.") or _keras2_config(config):
            raise Rejected(keras2_message(version), code="keras.keras2_format")
        if not version.startswith("3."):
            raise Rejected(
                f"metadata.json says Keras {version[:40]!r}; only Keras 3 archives are accepted. "
                + _FIX,
                code="keras.bad_metadata",
            )
        extra = settings.keras_extra_allowed_objects
        if settings.keras_hub:
            extra = extra | KERAS_HUB_OBJECTS
        scan_keras_config(config, extra)
        notes = scan_h5_member(path, zf.getinfo(_WEIGHTS), settings)
        return KerasScan(version, len(zf.infolist()), total, tuple(notes))


def keras2_message(version: str) -> str:
    shown = version if re.fullmatch(r"\d{1,3}(\.\d{1,4}){1,2}", version) else "2"  # file text
    return (
        f"This .keras file was written by Keras {shown} (tf.keras of TensorFlow "
        "2.13-2.15), not Keras 3. Keras 3 cannot load Keras 2 functional models, and tf-keras "
        "(Keras 2) imports any module a file names, so the registrar does not load this format. "
        f"Convert it where it was made, with that TensorFlow: {KERAS2_CONVERSION} and upload the "
        "model_savedmodel directory (a SavedModel, which TensorFlow Serving 2.15 serves)."
    )


# Verified by tests/validation/test_corpus.py: run with TensorFlow 2.15.1, its output registers.
KERAS2_CONVERSION = (
    'python -c "import tensorflow as tf; '
    "tf.keras.models.load_model('model.keras').export('model_savedmodel')\""
)


def _keras2_config(config: Any) -> bool:
    """Keras 2's own model classes (Keras 3 has no `engine` package)."""
    module = config.get("module") if isinstance(config, dict) else None
    return isinstance(module, str) and module.startswith(("keras.engine.", "keras.src.engine."))


def _check_members(zf: zipfile.ZipFile, settings: Settings) -> int:
    infos = zf.infolist()
    if len(infos) > settings.max_archive_members:
        raise Rejected(
            f"The archive has {len(infos)} members; the limit is {settings.max_archive_members} "
            "(MAX_ARCHIVE_MEMBERS).",
            code="keras.too_many_members",
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        _check_name(name, info)
        if name in seen:
            raise Rejected(
                f"The archive has two members named {name!r}; which one is loaded is ambiguous.",
                code="keras.duplicate_member",
            )
        seen.add(name)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise Rejected(
                f"Archive member {name!r} is a symbolic link; links are not accepted. {_FIX}",
                code="keras.symlink_member",
            )
        if info.flag_bits & 0x1:
            raise Rejected(f"Archive member {name!r} is encrypted.", code="keras.encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise Rejected(
                f"Archive member {name!r} uses compression method {info.compress_type}; "
                "expected stored or deflated.",
                code="keras.unsupported_compression",
            )
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > _RATIO_FLOOR and ratio > settings.max_compression_ratio:
            raise Rejected(
                f"Archive member {name!r} expands {ratio:.0f}x ({info.compress_size} -> "
                f"{info.file_size} bytes); the limit is {settings.max_compression_ratio}x "
                "(MAX_COMPRESSION_RATIO). This looks like a zip bomb: re-save the model with "
                "model.save(), or raise MAX_COMPRESSION_RATIO if the data really compresses so well.",
                code="keras.zip_bomb",
            )
        if total > settings.max_uncompressed_bytes:
            raise Rejected(
                f"The archive expands to more than {settings.max_uncompressed_bytes} bytes "
                "(MAX_UNCOMPRESSED_BYTES). This looks like a zip bomb, or the model is too big: "
                "re-save it with model.save(), or raise MAX_UNCOMPRESSED_BYTES.",
                code="keras.zip_bomb",
            )
    missing = [m for m in _REQUIRED if m not in seen]
    if missing:
        raise Rejected(
            f"The archive lacks {', '.join(missing)}; a Keras 3 .keras file has config.json, "
            f"metadata.json and model.weights.h5. {_FIX}",
            code="keras.missing_member",
        )
    unexpected = [n for n in seen if n not in _REQUIRED and not n.startswith("assets/")]
    if unexpected:
        raise Rejected(
            f"The archive has unexpected members {sorted(unexpected)[:5]}; expected only "
            f"config.json, metadata.json, model.weights.h5 and assets/. {_FIX}",
            code="keras.unexpected_member",
        )
    return total


def _check_name(name: str, info: zipfile.ZipInfo) -> None:
    parts = name.rstrip("/").split("/")
    orig = getattr(info, "orig_filename", name)
    bad = (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\\" in orig
        or "\x00" in orig
        or (len(name) > 1 and name[1] == ":")
        or any(p in ("", ".", "..") for p in parts)
    )
    if bad:
        raise Rejected(
            f"Archive member name {orig!r} is absolute or escapes the archive ('..', '\\', drive "
            f"letters). Such archives can overwrite files when extracted. {_FIX}",
            code="keras.path_traversal",
        )


def _read_json(zf: zipfile.ZipFile, name: str) -> Any:
    """Parse a JSON member within explicit limits: its declared sizes (uncompressed and
    compressed, from the central directory) before a byte is read, then the number of JSON
    values (an upper bound counted in C: every value after the first in a container follows a
    comma) before `json.loads` allocates anything."""
    info = zf.getinfo(name)
    limit = MAX_CONFIG_JSON_BYTES if name == "config.json" else MAX_METADATA_JSON_BYTES
    if max(info.file_size, info.compress_size) > limit:
        raise Rejected(
            f"{name} is {max(info.file_size, info.compress_size):,} bytes; the limit is "
            f"{limit:,} (an EfficientNetB7's config.json is 789 KB). It was not parsed.",
            code="keras.config_too_large",
        )
    try:
        raw = zf.read(info)
        values = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
        if values > MAX_JSON_VALUES:
            raise Rejected(
                f"{name} holds up to {values:,} JSON values; the limit is {MAX_JSON_VALUES:,} "
                "(an EfficientNetB7's config.json has 49,000). It was not parsed.",
                code="keras.config_too_large",
            )
        return json.loads(raw.decode("utf-8"))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise Rejected(
            f"{name} cannot be read from the archive ({exc}); the file is corrupt or truncated.",
            code="keras.truncated_zip",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise Rejected(
            f"{name} is not valid JSON ({str(exc)[:120]}). {_FIX}",
            code="keras.bad_config",
        ) from None
