"""The committed Keras allowlist is what dev/keras_allowlist_gen.py enumerates from the installed
Keras, it covers what Keras' own public API writes (keras.applications' internal layers too), and
it excludes code-loading objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dev import keras_allowlist_gen
from handlers.validation.scan.keras_allowlist import ALLOWED_OBJECTS, BUILTIN_FUNCTIONS
from handlers.validation.scan.keras_config import scan_keras_config

ROOT = Path(__file__).resolve().parents[3]


def test_allowlist_matches_installed_keras():
    committed = (ROOT / "handlers" / "validation" / "scan" / "keras_allowlist.py").read_text()
    assert committed == keras_allowlist_gen.render(), (
        "run: python -m dev.keras_allowlist_gen > handlers/validation/scan/keras_allowlist.py"
    )


def test_allowlist_excludes_code_and_file_loaders():
    short = {name.rpartition(".")[2] for name in ALLOWED_OBJECTS}
    assert not short & {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "get_file"}
    assert "keras.layers.Dense" in ALLOWED_OBJECTS
    assert "keras.src.models.functional.Functional" in ALLOWED_OBJECTS
    assert "relu" in BUILTIN_FUNCTIONS and "deserialize" not in BUILTIN_FUNCTIONS
    assert not any(name.startswith("keras.config") for name in ALLOWED_OBJECTS)


def test_applications_internal_layers_are_enumerated():
    """keras.applications defines layers it does not export; Keras writes them under their module."""
    assert "keras.src.applications.convnext.LayerScale" in ALLOWED_OBJECTS
    assert "keras.src.applications.inception_resnet_v2.CustomScaleLayer" in ALLOWED_OBJECTS


@pytest.mark.parametrize("build", ["ConvNeXtTiny", "InceptionResNetV2"])
def test_what_keras_applications_write_passes_the_scan(build):
    keras = pytest.importorskip("keras")
    size = 75 if build == "InceptionResNetV2" else 32
    model = getattr(keras.applications, build)(weights=None, input_shape=(size, size, 3))
    config = json.loads(model.to_json())  # what model.save writes as config.json
    scan_keras_config(config)  # raises Rejected on anything outside the allowlist
