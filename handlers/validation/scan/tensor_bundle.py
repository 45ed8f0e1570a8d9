"""Reads a SavedModel's `variables/variables.index` (a TensorFlow table file) without TensorFlow.

Used to check that the shard files it names are all present and long enough for every tensor.
Format: tensorflow/core/lib/io/{format,block}.cc (LevelDB tables) and tensor_bundle.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from handlers.validation.scan.proto import message

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_MAX_INDEX = 1024**3


class BundleError(ValueError):
    """The index file is not a readable tensor bundle index."""


def read_bundle_index(path: Path) -> tuple[int, list[tuple[str, int, int, int]]]:
    """Return (num_shards, [(tensor key, shard id, offset, size), ...])."""
    data = path.read_bytes() if path.stat().st_size <= _MAX_INDEX else b""
    if len(data) < _FOOTER:
        raise BundleError("file too short for a table footer")
    (magic,) = struct.unpack("<Q", data[-8:])
    if magic != _MAGIC:
        raise BundleError("bad table magic number")
    footer = data[-_FOOTER:]
    pos = 0
    _, pos = _varint(footer, pos)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    header_cls, entry_cls = message("BundleHeaderProto"), message("BundleEntryProto")
    num_shards = None
    entries: list[tuple[str, int, int, int]] = []
    for _, handle in _block_entries(data, index_offset, index_size):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block_entries(data, offset, size):
            if key == b"":
                header = header_cls()
                header.ParseFromString(value)
                num_shards = header.num_shards
                continue
            entry = entry_cls()
            entry.ParseFromString(value)
            entries.append(
                (key.decode("utf-8", "replace"), entry.shard_id, entry.offset, entry.size)
            )
    if num_shards is None:
        raise BundleError("no bundle header entry")
    return num_shards, entries


def _block_entries(data: bytes, offset: int, size: int) -> Iterator[tuple[bytes, bytes]]:
    end = offset + size
    if end + 5 > len(data) - _FOOTER:
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
