"""The committed Keras allowlist matches the installed Keras, and it excludes code-loading objects."""

from __future__ import annotations

from pathlib import Path

from handlers.validation.scan.keras_allowlist import ALLOWED_OBJECTS, BUILTIN_FUNCTIONS
from tests.validation import allowlist_gen


def test_allowlist_matches_installed_keras():
    committed = (
        Path(__file__).resolve().parents[3]
        / "handlers"
        / "validation"
        / "scan"
        / "keras_allowlist.py"
    ).read_text()
    assert committed == allowlist_gen.render(), "run: python -m tests.validation.allowlist_gen"


def test_allowlist_excludes_code_and_file_loaders():
    short = {name.rpartition(".")[2] for name in ALLOWED_OBJECTS}
    assert not short & {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "get_file"}
    assert "keras.layers.Dense" in ALLOWED_OBJECTS
    assert "keras.src.models.functional.Functional" in ALLOWED_OBJECTS
    assert "relu" in BUILTIN_FUNCTIONS and "deserialize" not in BUILTIN_FUNCTIONS
    assert not any(name.startswith("keras.config") for name in ALLOWED_OBJECTS)
