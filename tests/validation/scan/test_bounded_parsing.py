"""What the function process parses itself is parsed under explicit limits, with memory
proportional to the input and capped: saved_model.pb (parse-memory estimate before parsing),
variables.index (streamed, key/entry caps), the .keras zip (end records and central directory
bounded before zipfile, exact framing) and its JSON members (size and value caps)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from handlers.errors import Rejected
from handlers.limits import (
    MAX_GRAPH_PARSE_BYTES,
    MAX_INDEX_ENTRIES,
    MAX_INDEX_KEY_BYTES,
)
from handlers.validation.scan import proto, savedmodel, zip_framing
from handlers.validation.scan.keras import scan_keras_file
from handlers.validation.scan.tensor_bundle import (
    BundleError,
    BundleLimit,
    open_bundle_index,
    read_bundle_index,
)
from tests.conftest import make_settings
from tests.validation.scan import hostile_files as hostile

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = make_settings()


# ---- saved_model.pb ---------------------------------------------------------------------------


def test_a_real_graph_parses_within_the_budget(valid_saved_model: Path) -> None:
    data = (valid_saved_model / "saved_model.pb").read_bytes()
    parsed = proto.parse_limited("SavedModel", data, MAX_GRAPH_PARSE_BYTES)
    assert len(parsed.meta_graphs) == 1
    assert proto.estimate_parse_bytes(data, "SavedModel", MAX_GRAPH_PARSE_BYTES) > 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: hostile.empty_node_graph(8_000_000),  # 16 MB -> ~0.7 GB parsed
        lambda: hostile.empty_attr_graph(10_000, 800),  # 16 MB of empty attribute entries
        lambda: hostile.empty_input_graph(8_000_000),  # 16 MB of empty input strings
    ],
    ids=["empty-nodes", "empty-attrs", "empty-inputs"],
)
def test_an_amplifying_graph_is_refused_before_it_is_parsed(make, tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(make())
    began = time.monotonic()
    with pytest.raises(Rejected) as err:
        savedmodel._parse(tmp_path / "saved_model.pb")
    assert err.value.code == "savedmodel.graph_too_large"
    assert "MiB" in str(err.value)
    assert time.monotonic() - began < 10  # the walk stops at the budget


@pytest.mark.parametrize(
    "data",
    [
        b"\x0b\x00\x00\x0c",  # a group (wire types 3/4): TensorFlow writes none
        b"\x12\xff\xff\xff\x0f" + b"\x00" * 10,  # a length past the end
        b"\x12\x05\x12\x03\x0a",  # truncated inside
    ],
)
def test_malformed_wire_data_is_refused_by_the_walk(data: bytes) -> None:
    with pytest.raises(proto.ProtoLimit):
        proto.estimate_parse_bytes(data * 5_000_000, "SavedModel", 1024)


def test_the_asset_names_are_read_without_building_the_graph() -> None:
    data = hostile.empty_node_graph(8_000_000)
    began = time.monotonic()
    assert savedmodel.parse_asset_names(data) == frozenset()
    assert time.monotonic() - began < 2  # the graph is skipped by its length


_MEASURE = textwrap.dedent(
    """
    import gc, json, psutil
    from handlers.validation.scan import proto
    from tests.validation.scan import hostile_files as hostile
    data = getattr(hostile, {kind!r})(*{args!r})
    walk = int(len(data) * proto._worst_cost_per_byte()) - 1  # below the shortcut: walk
    estimate = proto.estimate_parse_bytes(data, "SavedModel", walk)
    gc.collect()
    before = psutil.Process().memory_info().rss
    parsed = proto.message("SavedModel")()
    parsed.ParseFromString(data)
    grew = psutil.Process().memory_info().rss - before
    print(json.dumps({{"estimate": estimate, "grew": grew, "size": len(data)}}))
    """
)


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        ("empty_node_graph", (1_000_000,)),
        ("empty_attr_graph", (2_000, 500)),
        ("empty_input_graph", (1_000_000,)),
        ("empty_object_graph", (1_000_000,)),
    ],
)
def test_the_estimate_bounds_what_the_parser_allocates(kind: str, args: tuple) -> None:
    """The cost model is the limit's foundation: measured in a fresh process, what upb actually
    allocates for the worst shapes stays within estimate + the copied bytes."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(kind=kind, args=args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    numbers = json.loads(out.stdout)
    assert numbers["grew"] <= numbers["estimate"] + numbers["size"] + 4 * 1024**2, numbers
    assert numbers["grew"] > numbers["estimate"] / 4, numbers  # and is not wildly above it


# ---- variables.index --------------------------------------------------------------------------


def test_a_real_index_streams_the_same_entries(valid_saved_model: Path) -> None:
    index = valid_saved_model / "variables" / "variables.index"
    num_shards, entries = read_bundle_index(index)
    assert num_shards == 3 and len(entries) >= 3
    with open_bundle_index(index) as (again, streamed):
        assert again == num_shards and list(streamed) == entries


def _index(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "variables.index"
    path.write_bytes(data)
    return path


def test_prefix_compression_cannot_blow_up_the_keys(tmp_path: Path) -> None:
    data = hostile.prefix_bomb_index(key_bytes=60_000, repeats=200_000)  # 1 MB -> 12 GB
    assert len(data) < 1_100_000
    began = time.monotonic()
    with pytest.raises(BundleLimit, match="decode to more than"):
        read_bundle_index(_index(tmp_path, data))
    assert time.monotonic() - began < 5


def test_a_key_longer_than_the_cap_is_refused(tmp_path: Path) -> None:
    data = hostile.prefix_bomb_index(key_bytes=MAX_INDEX_KEY_BYTES + 1, repeats=1)
    with pytest.raises(BundleLimit, match="a key of"):
        read_bundle_index(_index(tmp_path, data))


def test_more_entries_than_the_cap_are_refused(tmp_path: Path) -> None:
    data = hostile.bundle_index([(0, b"a", b"")] + [(1, b"", b"")] * MAX_INDEX_ENTRIES)
    with pytest.raises(BundleLimit, match="tensors"):
        read_bundle_index(_index(tmp_path, data))


def test_data_blocks_may_not_be_walked_twice(tmp_path: Path) -> None:
    entries = [(0, b"a", hostile.entry_value())]
    num, found = read_bundle_index(_index(tmp_path, hostile.bundle_index(entries)))
    assert num == 1 and len(found) == 1
    with pytest.raises(BundleError, match="overlap"):
        read_bundle_index(_index(tmp_path, hostile.bundle_index(entries, handles=100_000)))


def test_an_absurd_shard_count_is_refused_without_enumerating_it(tmp_path: Path) -> None:
    variables = tmp_path / "variables"
    variables.mkdir()
    (variables / "variables.index").write_bytes(hostile.bundle_index([], num_shards=2**31 - 1))
    (variables / "variables.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(Rejected) as err:
        savedmodel._check_variables(tmp_path)
    assert err.value.code == "savedmodel.bad_index"


def test_an_index_over_its_cap_is_refused_by_the_scan_too(tmp_path: Path, monkeypatch) -> None:
    from handlers.validation.scan import tensor_bundle

    variables = tmp_path / "variables"
    variables.mkdir()
    (variables / "variables.index").write_bytes(hostile.bundle_index([]))
    (variables / "variables.data-00000-of-00001").write_bytes(b"")
    monkeypatch.setattr(tensor_bundle, "MAX_INDEX_BYTES", 10)
    with pytest.raises(Rejected) as err:
        savedmodel._check_variables(tmp_path)
    assert err.value.code == "savedmodel.index_too_large"


# ---- .keras zip framing and JSON --------------------------------------------------------------


def _scan_code(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(Rejected) as err:
        scan_keras_file(path, SETTINGS)
    return err.value.code


def _framing(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "framing.zip"
    path.write_bytes(data)
    with path.open("rb") as f:
        directory = zip_framing.read_directory(f, len(data), SETTINGS.max_archive_members)
    with zipfile.ZipFile(path) as zf, path.open("rb") as f:
        zip_framing.check_contiguous(f, zf.infolist(), directory)


def test_a_keras_save_and_a_streamed_zip_are_well_framed(valid_keras: Path, tmp_path) -> None:
    _framing(valid_keras.read_bytes(), tmp_path)
    members = [(i.filename, d) for i, d in hostile.keras_members(valid_keras)]
    streamed = hostile.streamed_zip(members)
    with zipfile.ZipFile(io.BytesIO(streamed)) as zf:
        assert all(i.flag_bits & 0x08 for i in zf.infolist())  # data descriptors in use
    _framing(streamed, tmp_path)


@pytest.mark.parametrize(
    "variant",
    [
        "zip_in_front",
        "trailing_junk",
        "junk_after_comment",
        "gap_between_members",
        "gap_before_directory",
        "renamed_local_header",
    ],
)
def test_anything_outside_the_members_is_bad_framing(
    valid_keras: Path, tmp_path: Path, variant: str
) -> None:
    original = valid_keras.read_bytes()
    members = hostile.keras_members(valid_keras)
    if variant == "zip_in_front":  # a polyglot: another archive, then the model
        data = hostile.streamed_zip([("readme.txt", b"hello")]) + original
    elif variant == "trailing_junk":
        data = original + b"\n#!/bin/sh\necho appended\n"
    elif variant == "junk_after_comment":
        with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
            for info, payload in members:
                zf.writestr(info, payload)
            zf.comment = b"a comment"
        data = (tmp_path / "c.zip").read_bytes() + b"more"
    elif variant == "gap_between_members":
        data = hostile.rezip(members, gap_before="model.weights.h5")
    elif variant == "gap_before_directory":
        data = hostile.rezip(members, gap_before_directory=True)
    else:
        data = original.replace(b"config.json", b"config.jsoo", 1)  # local header only
    assert _scan_code(tmp_path / "m.keras", data) == "keras.bad_zip_framing"


def test_a_comment_that_ends_the_file_is_fine(valid_keras: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "c.keras", "w") as zf:
        for info, payload in hostile.keras_members(valid_keras):
            zf.writestr(info, payload)
        zf.comment = b"saved by a tool that writes comments"
    _framing((tmp_path / "c.keras").read_bytes(), tmp_path)


def test_a_million_entry_directory_is_refused_from_its_end_record(tmp_path: Path) -> None:
    data = hostile.million_entry_zip()  # a valid Zip64 archive: zipfile would list 1M entries
    began = time.monotonic()
    assert _scan_code(tmp_path / "m.keras", data) == "keras.too_many_members"
    assert time.monotonic() - began < 2


def test_an_end_record_that_undercounts_the_directory_is_refused(tmp_path: Path) -> None:
    assert _scan_code(tmp_path / "m.keras", hostile.lying_count_zip()) == "keras.too_many_members"
    small = hostile.lying_count_zip(entries=5)  # says 3, holds 5, within the byte bound
    assert _scan_code(tmp_path / "s.keras", small) == "keras.bad_zip_framing"


def _parts(valid_keras: Path) -> tuple[dict, dict, bytes]:
    with zipfile.ZipFile(valid_keras) as zf:
        return (
            json.loads(zf.read("config.json")),
            json.loads(zf.read("metadata.json")),
            zf.read("model.weights.h5"),
        )


def test_a_63_mib_config_is_refused_without_being_read(
    valid_keras: Path, tmp_path: Path, monkeypatch
) -> None:
    config, metadata, weights = _parts(valid_keras)
    path = hostile.huge_config_keras(tmp_path / "huge.keras", config, metadata, weights)
    assert path.stat().st_size > 63 * 1024**2

    def no_parsing(*args, **kwargs):
        raise AssertionError("config.json was parsed")

    monkeypatch.setattr(json, "loads", no_parsing)
    monkeypatch.setattr(zipfile.ZipFile, "read", no_parsing)
    with pytest.raises(Rejected) as err:
        scan_keras_file(path, SETTINGS)
    assert err.value.code == "keras.config_too_large"
    assert "not parsed" in str(err.value)


def test_a_config_with_too_many_json_values_is_refused_before_json_loads(
    valid_keras: Path, tmp_path: Path
) -> None:
    config, metadata, weights = _parts(valid_keras)
    config["config"]["layers"][0]["config"]["junk"] = [{}] * 1_100_000  # 3.3 MB
    with zipfile.ZipFile(tmp_path / "many.keras", "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", json.dumps(config, separators=(",", ":")))
        zf.writestr("model.weights.h5", weights)
    with pytest.raises(Rejected) as err:
        scan_keras_file(tmp_path / "many.keras", SETTINGS)
    assert err.value.code == "keras.config_too_large"


def test_the_real_keras_file_still_passes_the_scan(valid_keras: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model.keras"
    shutil.copy(valid_keras, copy)
    scan = scan_keras_file(copy, SETTINGS)
    assert scan.members == 3 and os.path.getsize(copy) > 0


def test_a_weights_file_with_too_many_links_is_refused_before_walking_them(
    valid_keras: Path, tmp_path: Path
) -> None:
    config, metadata, _ = _parts(valid_keras)
    path = tmp_path / "links.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", hostile.hard_link_h5())
    began = time.monotonic()
    with pytest.raises(Rejected) as err:
        scan_keras_file(path, SETTINGS)
    assert err.value.code == "keras.hdf5_bomb"
    assert time.monotonic() - began < 2  # counted per group in C, not walked link by link
