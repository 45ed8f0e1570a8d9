"""Reads a SavedModel's `variables/variables.index` (a TensorFlow table file) without TensorFlow.

Used to check that the shard files it names are all present and long enough for every tensor.
Format: tensorflow/core/lib/io/{format,block}.cc (LevelDB tables) and tensor_bundle.proto.

The file is untrusted and read in the function process, so the work is bounded by the input:
it is mapped (`mmap`), not read into memory; entries are streamed, one decoded key at a time;
data blocks must follow each other without overlapping (as TensorFlow writes them), so no byte
is walked twice; and prefix compression, which lets a 3-byte entry stand for a key as long as
the previous one, is capped (key length, total decoded key bytes, number of entries).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...limits import (
    MAX_INDEX_BYTES,
    MAX_INDEX_ENTRIES,
    MAX_INDEX_KEY_BYTES,
    MAX_INDEX_KEY_EXPANSION,
    MiB,
)
from .proto import message

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5  # compression type byte + crc32c after every block

Entry = tuple[str, int, int, int]  # tensor key, shard id, offset, size


class BundleError(ValueError):
    """The index file is not a readable tensor bundle index."""

    code = "savedmodel.bad_index"


class BundleLimit(BundleError):
    """The index file is readable but exceeds a limit of this reader."""

    code = "savedmodel.index_too_large"


@contextmanager
def open_bundle_index(path: Path) -> Iterator[tuple[int, Iterator[Entry]]]:
    """`with open_bundle_index(p) as (num_shards, entries):` — entries are streamed (and the
    limits enforced) while the caller iterates, inside the `with`."""
    size = path.stat().st_size
    if size > MAX_INDEX_BYTES:
        raise BundleLimit(
            f"the index is {size:,} bytes; this check reads at most {MAX_INDEX_BYTES:,}"
        )
    if size < _FOOTER:
        raise BundleError("file too short for a table footer")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        reader = _Reader(mm)  # slices of an mmap are copies: one block at a time is in memory
        yield reader.header(), reader.entries()


def read_bundle_index(path: Path) -> tuple[int, list[Entry]]:
    """Return (num_shards, [(tensor key, shard id, offset, size), ...]) — for small indexes and
    tests; the scan streams with `open_bundle_index`."""
    with open_bundle_index(path) as (num_shards, entries):
        return num_shards, list(entries)


class _Reader:
    def __init__(self, data: mmap.mmap) -> None:
        self._data = data
        (magic,) = struct.unpack("<Q", data[-8:])
        if magic != _MAGIC:
            raise BundleError("bad table magic number")
        footer = bytes(data[-_FOOTER:])
        pos = 0
        _, pos = _varint(footer, pos)  # metaindex offset
        _, pos = _varint(footer, pos)  # metaindex size
        index_offset, pos = _varint(footer, pos)
        index_size, pos = _varint(footer, pos)
        self._index = (index_offset, index_size)
        self._entries = 0
        self._key_budget = MAX_INDEX_KEY_EXPANSION * len(data) + MiB
        self._entry_cls = message("BundleEntryProto")

    def header(self) -> int:
        """num_shards from the header entry: the empty key, the table's first."""
        for key, value in self._records():
            if key != b"":
                break
            header = message("BundleHeaderProto")()
            header.ParseFromString(value)
            return int(header.num_shards)
        raise BundleError("no bundle header entry")

    def entries(self) -> Iterator[Entry]:
        records = self._records()
        next(records)  # the header
        for key, value in records:
            self._entries += 1
            if self._entries > MAX_INDEX_ENTRIES:
                raise BundleLimit(f"more than {MAX_INDEX_ENTRIES:,} tensors in the index")
            entry = self._entry_cls()
            entry.ParseFromString(value)
            yield key.decode("utf-8", "replace"), entry.shard_id, entry.offset, entry.size

    def _records(self) -> Iterator[tuple[bytes, bytes]]:
        next_block = 0
        for _, handle in self._block(*self._index, budget=False):
            offset, p = _varint(handle, 0)
            size, _ = _varint(handle, p)
            if offset < next_block:
                raise BundleError("data blocks overlap or are out of order")
            next_block = offset + size + _TRAILER
            yield from self._block(offset, size, budget=True)

    def _block(self, offset: int, size: int, *, budget: bool) -> Iterator[tuple[bytes, bytes]]:
        data = self._data
        end = offset + size
        if end + _TRAILER > len(data) - _FOOTER:
            raise BundleError("block handle outside the file")
        if data[end] != 0:
            raise BundleError("compressed blocks are not supported")
        block = data[offset:end]
        if len(block) < 4:
            raise BundleError("block too short")
        (restarts,) = struct.unpack("<I", block[-4:])
        limit = len(block) - 4 - 4 * restarts
        if limit < 0:
            raise BundleError("bad restart count")
        pos, key = 0, b""
        while pos < limit:
            shared, pos = _varint(block, pos)
            unshared, pos = _varint(block, pos)
            value_len, pos = _varint(block, pos)
            if shared > len(key) or pos + unshared + value_len > limit:
                raise BundleError("corrupt block entry")
            if shared + unshared > MAX_INDEX_KEY_BYTES:
                raise BundleLimit(
                    f"a key of {shared + unshared:,} bytes; tensor names are at most "
                    f"{MAX_INDEX_KEY_BYTES:,} here"
                )
            if budget:
                self._key_budget -= shared + unshared
                if self._key_budget < 0:
                    raise BundleLimit(
                        "its keys decode to more than "
                        f"{MAX_INDEX_KEY_EXPANSION}x the file's size (prefix compression abuse)"
                    )
            key = key[:shared] + block[pos : pos + unshared]
            pos += unshared
            yield key, block[pos : pos + value_len]
            pos += value_len


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BundleError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
