"""Generators of hostile files aimed at what the function process parses itself (outside the
sandbox), written from the formats' specifications with struct, zipfile and our protobuf subset:
no third-party attack corpus. Used by the scan tests and tests/integration/test_hostile_uploads.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

from handlers.validation.scan.proto import message

# ---- protobuf ---------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def empty_node_graph(nodes: int, *, valid_prefix: bytes = b"") -> bytes:
    """`saved_model.pb` bytes: one MetaGraph whose GraphDef holds `nodes` empty NodeDefs
    (2 bytes each, ~80 bytes each once parsed). `valid_prefix`: serialized GraphDef fields to
    put first (e.g. a real graph's), so the file starts like a real one."""
    graph = valid_prefix + b"\x0a\x00" * nodes  # GraphDef.node (1), empty
    meta = _field(2, graph)  # MetaGraphDef.graph_def (2)
    return _field(2, meta)  # SavedModel.meta_graphs (2)


def empty_attr_graph(nodes: int, attrs: int) -> bytes:
    """`nodes` NodeDefs each with `attrs` empty attribute entries (a 2-byte AttrEntry each)."""
    node = _field(5, b"") * attrs  # NodeDef.attr (5)
    graph = _field(1, node) * nodes
    return _field(2, _field(2, graph))


def empty_input_graph(inputs: int) -> bytes:
    """One NodeDef with `inputs` empty strings in its repeated `input` (3)."""
    node = b"\x1a\x00" * inputs
    return _field(2, _field(2, _field(1, node)))


def empty_object_graph(objects: int) -> bytes:
    """An object graph (MetaGraphDef.object_graph_def, 7) of `objects` empty SavedObjects, each
    with an empty child reference (SavedObject.children, 1): 4 bytes, two messages each."""
    obj = _field(1, b"")
    graph = _field(1, obj) * objects  # SavedObjectGraph.nodes (1)
    return _field(2, _field(7, graph))


def with_meta_graph_fields(pb: bytes, extra_graph: bytes) -> bytes:
    """A real `saved_model.pb` with `extra_graph` (serialized GraphDef fields) merged into its
    MetaGraph's graph_def: protobuf merges repeated fields, so the nodes are appended."""
    return pb + _field(2, _field(2, extra_graph))


# ---- variables.index (LevelDB table, tensorflow/core/lib/io/format.cc) ------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57


def _block(entries: list[tuple[int, bytes, bytes]]) -> bytes:
    """(shared, key delta, value) entries, one restart point, then the 5-byte trailer."""
    body = b"".join(
        _varint(shared) + _varint(len(delta)) + _varint(len(value)) + delta + value
        for shared, delta, value in entries
    )
    return body + struct.pack("<II", 0, 1)


def bundle_index(
    entries: list[tuple[int, bytes, bytes]], *, num_shards: int = 1, handles: int = 1
) -> bytes:
    """A tensor-bundle index: the header entry (empty key), then `entries` (shared prefix
    length, key delta, BundleEntryProto bytes), in one data block; `handles` > 1 points the
    index block at that one data block several times (its bytes walked again and again)."""
    header = message("BundleHeaderProto")(num_shards=num_shards).SerializeToString()
    data = _block([(0, b"", header), *entries])
    trailer = b"\x00" + b"\x00" * 4  # no compression, crc (not checked by our reader)
    index_at = len(data) + len(trailer)
    handle = _varint(0) + _varint(len(data))
    index = _block([(0, b"\xff", handle)] + [(1, b"", handle)] * (handles - 1))
    footer = _varint(0) + _varint(0) + _varint(index_at) + _varint(len(index))
    footer = footer.ljust(40, b"\x00") + struct.pack("<Q", _TABLE_MAGIC)
    return data + trailer + index + trailer + footer


def entry_value(shard: int = 0, offset: int = 0, size: int = 0) -> bytes:
    return message("BundleEntryProto")(
        dtype=1, shard_id=shard, offset=offset, size=size
    ).SerializeToString()


def prefix_bomb_index(
    key_bytes: int = 500_000, repeats: int = 100_000, *, num_shards: int = 1
) -> bytes:
    """~1 MB that decodes to `repeats` keys of `key_bytes` each (50 GB by default): every entry
    after the first shares the whole previous key and adds nothing."""
    first = (0, b"k" * key_bytes, b"")
    return bundle_index([first, *[(key_bytes, b"", b"")] * repeats], num_shards=num_shards)


# ---- zip (APPNOTE.TXT) ------------------------------------------------------------------------


def million_entry_zip(entries: int = 1_000_000) -> bytes:
    """A zip whose central directory has `entries` entries (Zip64 end records, as a real
    archiver writes them past 65,535), all naming one tiny stored member: ~50 MB, and a
    `ZipInfo` of ~0.5 KiB each if a reader builds its list before counting."""
    name = b"a"
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0) + name
    central = (
        struct.pack(
            "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 3, 20, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
        )
        + name
    )
    cd = central * entries
    cd_offset = len(local)
    zip64_at = cd_offset + len(cd)
    zip64 = struct.pack(
        "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, len(cd), cd_offset
    )
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return local + cd + zip64 + locator + eocd


def lying_count_zip(entries: int = 300_000) -> bytes:
    """The same without Zip64: the end record says 3 entries, the directory holds `entries`
    (zipfile reads entries until the directory's byte size is used up, not the count)."""
    data = million_entry_zip(entries)
    cut = data.index(b"PK\x06\x06")
    cd_size = cut - 31
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 3, 3, cd_size, 31, 0)
    return data[:cut] + eocd


def keras_members(keras_file: Path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(keras_file) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def rezip(
    members: list[tuple[zipfile.ZipInfo, bytes]],
    *,
    gap_before: str | None = None,
    gap_before_directory: bool = False,
    junk: bytes = b"JUNK" * 16,
) -> bytes:
    """The members written again, optionally with `junk` hidden in front of one member or
    between the last member and the central directory (offsets stay consistent, so `zipfile`
    reads the result without complaint)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for info, data in members:
            if info.filename == gap_before:
                zf.fp.write(junk)  # type: ignore[union-attr]
                zf.start_dir = zf.fp.tell()  # type: ignore[union-attr]  # next header after it
            zf.writestr(info, data)
        if gap_before_directory:
            zf.fp.write(junk)  # type: ignore[union-attr]
            zf.start_dir = zf.fp.tell()  # type: ignore[union-attr]
    return buffer.getvalue()


def streamed_zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip written to a non-seekable stream: data descriptors after every member (flag 0x08),
    as `zipfile` and many archivers write when they cannot seek back."""

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[no-untyped-def]
            self.data += b
            return len(b)

    sink = Unseekable()
    with zipfile.ZipFile(sink, "w") as zf:
        for name, data in members:
            with zf.open(name, "w") as handle:
                handle.write(data)
    return bytes(sink.data)


def huge_config_keras(path: Path, base_config: dict, metadata: dict, weights: bytes) -> Path:
    """A `.keras` whose config.json is 63 MiB (stored, so no ratio check fires first): a real
    config with one 63 MiB string appended in a layer's config."""
    config = json.loads(json.dumps(base_config))
    config["config"]["layers"][0]["config"]["padding"] = "x" * (63 * 1024**2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights)
    return path


def hard_link_h5(links: int = 60_000) -> bytes:
    """model.weights.h5 whose one group is linked `links` times (1.8 MB for 60,000): every link
    is a member to visit, though it adds no object."""
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver="latest") as h5:
        layers, target = h5.create_group("layers"), h5.create_group("target")
        for i in range(links):
            layers[f"l{i}"] = target
    return buffer.getvalue()
