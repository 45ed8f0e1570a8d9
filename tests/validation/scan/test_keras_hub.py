"""KERAS_HUB (opt-in): KerasHub's registered classes pass the `.keras` scan only with the setting,
path and hub-handle arguments stay refused with it, and the committed list is what
dev/keras_hub_allowlist_gen.py enumerates (checked only where keras_hub is installed)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import h5py
import pytest

from handlers.errors import Rejected
from handlers.settings import Settings
from handlers.validation.scan.keras import scan_keras_file
from handlers.validation.scan.keras_hub_allowlist import KERAS_HUB_OBJECTS

ROOT = Path(__file__).resolve().parents[3]
# config.json of a tiny BertTextClassifier (backbone, preprocessor, tokenizer) as KerasHub 0.32.0
# wrote it with model.save(); its vocabulary went to assets/ inside the archive.
CONFIG = json.loads((Path(__file__).with_name("keras_hub_bert_classifier.json")).read_text())
OFF = Settings(project="p")
ON = replace(OFF, keras_hub=True)


def _archive(tmp_path: Path, config: dict) -> Path:
    weights = tmp_path / "w.h5"
    with h5py.File(weights, "w"):
        pass
    path = tmp_path / "hub.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", json.dumps(config))
        zf.write(weights, "model.weights.h5")
        zf.writestr("assets/preprocessor/tokenizer/vocabulary.txt", "[PAD]\n[UNK]\n")
    return path


def _tokenizer(config: dict) -> dict:
    return config["config"]["preprocessor"]["config"]["tokenizer"]


def test_keras_hub_classes_are_refused_without_the_setting_naming_it(tmp_path: Path):
    with pytest.raises(Rejected) as info:
        scan_keras_file(_archive(tmp_path, CONFIG), OFF)
    assert info.value.code == "keras.disallowed_object"
    assert "keras_hub>BertTextClassifier" in str(info.value)
    assert "KERAS_HUB=true" in str(info.value)


def test_keras_hub_classes_pass_with_the_setting(tmp_path: Path):
    scan_keras_file(_archive(tmp_path, CONFIG), ON)


def test_the_setting_allows_only_keras_hub_s_registered_classes(tmp_path: Path):
    config = copy.deepcopy(CONFIG)
    config["registered_name"] = "keras_hub>NotAKerasHubClass"
    with pytest.raises(Rejected) as info:
        scan_keras_file(_archive(tmp_path, config), ON)
    assert info.value.code == "keras.disallowed_object"
    assert "KERAS_HUB" not in str(info.value)  # the setting would not help: no such class
    assert "keras_hub>upload_preset" not in KERAS_HUB_OBJECTS  # registered functions are out
    assert "keras_hub>gelu_approximate" in KERAS_HUB_OBJECTS


@pytest.mark.parametrize(
    ("key", "value", "code"),
    [
        ("vocabulary", "/etc/passwd", "keras.path_argument"),
        ("vocabulary", "vocab.txt", "keras.path_argument"),
        ("merges", "/home/user/merges.txt", "keras.path_argument"),
        ("proto", "../tokenizer.model", "keras.path_argument"),
        ("special_tokens", ["hf://google/bert"], "keras.path_argument"),
        ("vocabulary", ["kaggle://keras/bert/keras/bert_tiny_en_uncased"], "keras.path_argument"),
    ],
)
def test_path_and_hub_arguments_are_refused_even_with_the_setting(
    tmp_path: Path, key: str, value: object, code: str
):
    config = copy.deepcopy(CONFIG)
    _tokenizer(config)["config"][key] = value
    with pytest.raises(Rejected) as info:
        scan_keras_file(_archive(tmp_path, config), ON)
    assert info.value.code == code


def test_nested_code_stays_refused_with_the_setting(tmp_path: Path):
    config = copy.deepcopy(CONFIG)
    _tokenizer(config)["config"]["skip_py_fn"] = {
        "class_name": "__lambda__",
        "config": {"code": "x"},
        "module": None,
        "registered_name": None,
    }
    with pytest.raises(Rejected) as info:
        scan_keras_file(_archive(tmp_path, config), ON)
    assert info.value.code == "keras.lambda_layer"


@pytest.mark.skipif(
    importlib.util.find_spec("keras_hub") is None,
    reason="keras_hub is not installed (the opt-in kerashub extra): the committed list can only "
    "be compared with the generator's output where it is",
)
def test_committed_list_is_what_keras_hub_registers():
    # in its own process: importing keras_hub registers ~460 classes in Keras' global registry,
    # which no other test of this worker should see
    generated = subprocess.run(
        [sys.executable, "-m", "dev.keras_hub_allowlist_gen"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    committed = (ROOT / "handlers" / "validation" / "scan" / "keras_hub_allowlist.py").read_text()
    assert committed == generated, (
        "run: python -m dev.keras_hub_allowlist_gen > handlers/validation/scan/keras_hub_allowlist.py"
    )
