"""Static checks of the HDF5 weights inside a `.keras` archive, read in place with h5py.

The zip member is opened through a window onto the archive file (seek to its data offset), not
through `zipfile`'s file object, whose backward seeks re-read the entry (14.5 s vs 7 ms per GB).
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Any

from ...errors import Rejected
from ...settings import Settings

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
# Links walked in the function process (every group member, hard links to one object included):
# each costs ~0.25 ms of h5py calls, so the cap bounds the walk to ~15 s and its memory to a few
# tens of MiB. EfficientNetB7's weights hold 2,674 objects (18x below the cap).
_MAX_OBJECTS = 50_000
_BOMB_FLOOR = 16 * 1024**2  # declared sizes only matter above this
_FIX = "Save the model again with model.save('model.keras') and upload that file."


class MemberWindow(io.RawIOBase):
    """Read-only, seekable view of `size` bytes at `offset` of file descriptor `fd` (pread)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._offset, self._size, self._pos = fd, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted, done = max(0, min(len(view), self._size - self._pos)), 0
        while done < wanted:
            got = os.preadv(self._fd, [view[done:wanted]], self._offset + self._pos + done)
            if got <= 0:
                break
            done += got
        self._pos += done
        return done


def member_data_offset(f: Any, info: zipfile.ZipInfo) -> int:
    """Offset of a stored member's bytes in the archive (after its local file header)."""
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise Rejected(
            f"The local header of {info.filename!r} is corrupt; the archive is damaged. {_FIX}",
            code="keras.truncated_zip",
        )
    fields = _LOCAL_HEADER.unpack(header)
    return info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]


def scan_h5_member(archive: Path, info: zipfile.ZipInfo, settings: Settings) -> list[str]:
    """Check the weights member `info` of `archive`; return notes for the report."""
    import h5py  # ~60 ms import; keeps the module import cheap for non-keras paths

    with archive.open("rb") as raw:
        if info.compress_type == zipfile.ZIP_STORED:
            offset = member_data_offset(raw, info)
            if offset + info.file_size > archive.stat().st_size:
                raise Rejected(
                    f"{info.filename} extends past the end of the archive; the upload is "
                    f"truncated. {_FIX}",
                    code="keras.truncated_zip",
                )
            stream: Any = io.BufferedReader(MemberWindow(raw.fileno(), offset, info.file_size))
        else:
            # Keras stores weights uncompressed; a deflated member is read the slow way.
            stream = zipfile.ZipFile(raw).open(info)  # closed with `raw`
        try:
            with h5py.File(stream, "r") as h5:
                return _Checker(settings, h5py).check(h5)
        except Rejected:
            raise
        except Exception as exc:  # noqa: BLE001 h5py raises OSError/KeyError/ValueError on corrupt files
            raise Rejected(
                f"{info.filename} is not a readable HDF5 file ({str(exc)[:160]}). {_FIX}",
                code="keras.bad_weights",
            ) from None


class _Checker:
    def __init__(self, settings: Settings, h5py: Any) -> None:
        self._settings = settings
        self._h5py = h5py
        self._seen: set[tuple[int, int]] = set()
        self._declared = 0
        self._datasets = 0
        self._links = 0

    def check(self, root: Any) -> list[str]:
        self._group(root, "/")
        return [f"weights: {self._datasets} arrays, {self._declared} bytes"]

    def _group(self, group: Any, path: str) -> None:
        h5py = self._h5py
        # The object's address in the file: equal for hard links to one object. Not the
        # GroupID itself, which would keep every visited group open (~1.5 KB each in HDF5).
        info = self._h5py.h5o.get_info(group.id)
        key = (info.fileno, info.addr)
        if key in self._seen:
            return
        self._seen.add(key)
        self._links += group.id.get_num_objs()  # counted in C before any member is visited
        if self._links > _MAX_OBJECTS:
            raise Rejected(
                f"The weights file has more than {_MAX_OBJECTS} objects or links.",
                code="keras.hdf5_bomb",
            )
        for name in group:
            where = f"{path.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, (h5py.ExternalLink, h5py.SoftLink)):
                kind = type(link).__name__
                raise Rejected(
                    f"The weights file has a {kind} at {where}; links can read other files on "
                    f"the loading machine (CVE-2026-1669). {_FIX}",
                    code="keras.hdf5_external_link",
                )
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                self._group(obj, where)
            elif isinstance(obj, h5py.Dataset):
                self._dataset(obj, where)
            else:
                raise Rejected(
                    f"The weights file has an unexpected object at {where} ({type(obj).__name__}).",
                    code="keras.bad_weights",
                )

    def _dataset(self, ds: Any, where: str) -> None:
        h5py = self._h5py
        self._datasets += 1
        plist = ds.id.get_create_plist()
        if plist.get_external_count() > 0 or ds.is_virtual:
            raise Rejected(
                f"Dataset {where} stores its data in another file (external or virtual dataset); "
                f"that can read files on the loading machine (CVE-2026-1669). {_FIX}",
                code="keras.hdf5_external_link",
            )
        if not (_numeric(ds, h5py) or _bfloat16(ds)):
            raise Rejected(
                f"Dataset {where} has dtype {ds.dtype}; model weights are numeric arrays.",
                code="keras.bad_weights",
            )
        declared = int(ds.size) * ds.dtype.itemsize
        stored = ds.id.get_storage_size()
        self._declared += declared
        limit = self._settings.max_uncompressed_bytes
        ratio = declared / max(stored, 1)
        too_sparse = declared > _BOMB_FLOOR and ratio > self._settings.max_compression_ratio
        if self._declared > limit or too_sparse:
            raise Rejected(
                f"Dataset {where} declares {declared} bytes but stores {stored} (total declared "
                f"so far {self._declared}, limit {limit}); loading it would allocate memory "
                f"the file does not contain (CVE-2026-0897). {_FIX}",
                code="keras.hdf5_bomb",
            )


def _numeric(ds: Any, h5py: Any) -> bool:
    return ds.dtype.kind in "biufc" and h5py.check_dtype(ref=ds.dtype) is None


def _bfloat16(ds: Any) -> bool:
    """Keras stores bfloat16 weights as 2-byte opaque values tagged `dtype="bfloat16"`."""
    tag = ds.attrs.get("dtype")
    tag = tag.decode() if isinstance(tag, bytes) else tag
    return (
        ds.dtype.kind == "V"
        and ds.dtype.itemsize == 2
        and ds.dtype.fields is None
        and tag == "bfloat16"
    )
