"""Hostile `.keras` corpus: each is rejected with its own code and no payload code runs."""

from __future__ import annotations

import copy
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from handlers.errors import Rejected
from handlers.validation.validator import Validator
from tests.validation import corpus


@pytest.fixture(scope="module")
def base_config(valid_keras: Path) -> dict[str, Any]:
    return json.loads(corpus.read_member(valid_keras, "config.json"))


_WHAT_TO_DO = (
    r"\b([Rr]e-?save|[Ss]ave|[Rr]emove|[Uu]se|[Uu]pload|[Aa]dd|[Rr]eplace|[Rr]ebuild|[Ee]xport)\b"
)


def _rejected(validator: Validator, path: Path, tmp_path: Path, code: str) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.validate_keras(path, tmp_path / "work")
    assert info.value.code == code, str(info.value)
    # Our words: what was found and what to do — never the loader's text.
    assert re.search(_WHAT_TO_DO, str(info.value)), str(info.value)
    return info.value


def test_lambda_layer(validator, base_config, tmp_path, sentinel):
    path = corpus.write_keras(
        tmp_path / "m.keras", corpus.with_layer(base_config, corpus.lambda_layer(sentinel))
    )
    _rejected(validator, path, tmp_path, "keras.lambda_layer")


@pytest.mark.parametrize(
    "obj",
    [
        {"module": "os", "class_name": "system", "config": {"command": "touch X"}},
        {"module": "builtins", "class_name": "function", "config": "eval"},
        {"module": "keras.src.layers.evil", "class_name": "Dense", "config": {}},
        {"module": "keras.utils", "class_name": "function", "config": "get_file"},
        {"module": "keras.layers", "class_name": "Dense", "config": {}, "registered_name": "X>Y"},
    ],
    ids=["os.system", "builtins.eval", "lookalike-module", "get_file", "custom-registered"],
)
def test_disallowed_objects(validator, base_config, tmp_path, sentinel, obj):
    layer = {**obj, "name": "x", "inbound_nodes": []}
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, layer))
    _rejected(validator, path, tmp_path, "keras.disallowed_object")


def test_enable_unsafe_deserialization_reference(validator, base_config, tmp_path):
    layer = {
        "module": "keras.config",
        "class_name": "function",
        "config": "enable_unsafe_deserialization",
        "name": "x",
    }
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, layer))
    _rejected(validator, path, tmp_path, "keras.disallowed_object")


def test_lambda_nested_in_functional_submodel(validator, base_config, tmp_path, sentinel):
    inner = copy.deepcopy(base_config)
    inner["config"]["layers"].append(corpus.lambda_layer(sentinel))
    inner["name"] = "inner"
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, inner))
    _rejected(validator, path, tmp_path, "keras.lambda_layer")


def test_lambda_inside_time_distributed(validator, base_config, tmp_path, sentinel):
    wrapper = {
        "module": "keras.layers",
        "class_name": "TimeDistributed",
        "config": {"name": "td", "layer": corpus.lambda_layer(sentinel)},
        "registered_name": None,
        "name": "td",
        "inbound_nodes": [],
    }
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, wrapper))
    _rejected(validator, path, tmp_path, "keras.lambda_layer")


def test_lambda_in_compile_config_loss(validator, base_config, tmp_path, sentinel):
    config = copy.deepcopy(base_config)
    config["compile_config"] = {
        "optimizer": "adam",
        "loss": corpus.lambda_layer(sentinel)["config"]["function"],
    }
    path = corpus.write_keras(tmp_path / "m.keras", config)
    _rejected(validator, path, tmp_path, "keras.lambda_layer")


def test_tfsmlayer(validator, base_config, tmp_path):
    layer = {
        "module": "keras.layers",
        "class_name": "TFSMLayer",
        "config": {"name": "sm", "filepath": str(tmp_path)},
        "name": "sm",
    }
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, layer))
    _rejected(validator, path, tmp_path, "keras.tfsmlayer")


def test_string_lookup_vocabulary_path(validator, base_config, tmp_path):
    layer = {
        "module": "keras.layers",
        "class_name": "StringLookup",
        "config": {"name": "lookup", "vocabulary": "/etc/passwd"},
        "registered_name": None,
        "name": "lookup",
        "inbound_nodes": [],
    }
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(base_config, layer))
    _rejected(validator, path, tmp_path, "keras.path_argument")


def test_layer_name_with_traversal(validator, base_config, tmp_path):
    config = copy.deepcopy(base_config)
    config["config"]["layers"][1]["config"]["name"] = "../../etc/cron.d/x"
    path = corpus.write_keras(tmp_path / "m.keras", config)
    _rejected(validator, path, tmp_path, "keras.bad_name")


def test_zip_bomb(validator, base_config, tmp_path):
    bomb = bytes(64 * 1024**2)  # 64 MiB of zeros deflates ~1000x
    path = corpus.write_keras(
        tmp_path / "m.keras",
        base_config,
        extra={"assets/bomb.bin": bomb},
        compression=zipfile.ZIP_DEFLATED,
    )
    assert path.stat().st_size < 1024**2
    _rejected(validator, path, tmp_path, "keras.zip_bomb")


def test_zip_dotdot_entry(validator, base_config, tmp_path):
    path = corpus.write_keras(tmp_path / "m.keras", base_config, extra={"../evil.py": b"x"})
    _rejected(validator, path, tmp_path, "keras.path_traversal")


def test_zip_symlink_entry(validator, base_config, tmp_path):
    path = corpus.write_keras(tmp_path / "m.keras", base_config)
    with zipfile.ZipFile(path, "a") as zf:
        info = zipfile.ZipInfo("assets/link")
        info.external_attr = (0o120777 << 16) | 0x20
        zf.writestr(info, "/etc/passwd")
    _rejected(validator, path, tmp_path, "keras.symlink_member")


def test_hdf5_external_link(validator, valid_keras, base_config, tmp_path):
    weights = corpus.h5_with_external_link(tmp_path / "w", "/etc/passwd")
    path = corpus.write_keras(tmp_path / "m.keras", base_config, weights=weights)
    _rejected(validator, path, tmp_path, "keras.hdf5_external_link")


def test_h5_renamed_to_keras(validator, tmp_path):
    path = corpus.legacy_h5(tmp_path / "model.keras")
    _rejected(validator, path, tmp_path, "keras.legacy_h5")


def test_truncated_zip(validator, valid_keras, tmp_path):
    path = tmp_path / "m.keras"
    data = valid_keras.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _rejected(validator, path, tmp_path, "keras.truncated_zip")


def test_random_bytes(validator, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(os.urandom(4096).replace(b"PK", b"XX").replace(b"\x89H", b"XX"))
    _rejected(validator, path, tmp_path, "keras.not_a_zip")


def test_static_rejections_do_not_use_the_sandbox(validator, tmp_path):
    uses = validator.sandbox.uses
    path = tmp_path / "m.keras"
    path.write_bytes(b"not a model")
    with pytest.raises(Rejected):
        validator.validate_keras(path, tmp_path / "work")
    assert validator.sandbox.uses == uses
