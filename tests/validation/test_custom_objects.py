"""Registered custom objects (`@keras.saving.register_keras_serializable`) are allowed by the name
Keras writes (`package>ClassName`) and load in the sandbox when the module that registers them is
listed in KERAS_CUSTOM_OBJECT_MODULES; every refusal names the settings that work."""

from __future__ import annotations

import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.errors import Rejected, SettingsError
from handlers.settings import Settings
from handlers.validation.scan.keras_config import scan_keras_config
from handlers.validation.validator import Validator

keras = pytest.importorskip("keras")
custom = pytest.importorskip("tests.validation.custom_layers")

NAME = f"{custom.PACKAGE}>Scale"
MODULE = "tests.validation.custom_layers"


def _save(path: Path, *, main_module: bool) -> Path:
    """A model using the registered Scale layer; `main_module`: defined in a script, so Keras
    writes `"module": null` (what a notebook or `python train.py` produces)."""
    original = custom.Scale.__module__
    if main_module:
        custom.Scale.__module__ = "__main__"
    try:
        x = keras.Input((4,), name="x")
        model = keras.Model(x, keras.layers.Dense(2)(custom.Scale(3.0)(x)))
        model.save(path)
    finally:
        custom.Scale.__module__ = original
    return path


def _layer_config(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    return next(la for la in config["config"]["layers"] if la["class_name"] == "Scale")


@pytest.fixture(scope="module")
def custom_validator(settings: Settings):
    v = Validator(
        replace(
            settings,
            keras_extra_allowed_objects=frozenset({NAME}),
            keras_custom_object_modules=(MODULE,),
        )
    )
    yield v
    v.close()


def test_keras_writes_registered_objects_with_module_null(tmp_path: Path):
    layer = _layer_config(_save(tmp_path / "m.keras", main_module=True))
    assert layer["module"] is None and layer["registered_name"] == NAME


@pytest.mark.parametrize("main_module", [True, False])
def test_refusal_names_the_registered_name_and_the_module_setting(
    validator, tmp_path: Path, main_module: bool
):
    path = _save(tmp_path / "m.keras", main_module=main_module)
    with pytest.raises(Rejected) as info:
        validator.validate_keras(path, tmp_path / "work")
    assert info.value.code == "keras.disallowed_object"
    message = str(info.value)
    assert f"KERAS_EXTRA_ALLOWED_OBJECTS={NAME}" in message
    assert "KERAS_CUSTOM_OBJECT_MODULES" in message
    assert "None." not in message


@pytest.mark.parametrize("main_module", [True, False])
def test_allowlisted_registered_object_registers_and_loads(
    custom_validator, tmp_path: Path, main_module: bool
):
    path = _save(tmp_path / "m.keras", main_module=main_module)
    report = custom_validator.validate_keras(path, tmp_path / "work")
    assert report.smoke_test == "passed"
    assert (report.saved_model_dir / "saved_model.pb").is_file()


def test_allowing_by_registered_name_does_not_allow_other_names():
    layer = {"module": None, "class_name": "Scale", "config": {}, "registered_name": "Other>Scale"}
    with pytest.raises(Rejected, match="KERAS_EXTRA_ALLOWED_OBJECTS=Other>Scale"):
        scan_keras_config({"class_name": "Sequential", "config": {"layers": [layer]}}, {NAME})
    lambda_ = {**layer, "class_name": "Lambda", "registered_name": NAME}
    with pytest.raises(Rejected) as info:
        scan_keras_config({"class_name": "Sequential", "config": {"layers": [lambda_]}}, {NAME})
    assert info.value.code == "keras.lambda_layer"


def test_unregistered_custom_class_is_told_how_to_register_it():
    layer = {"module": "my_layers", "class_name": "Scale", "config": {}, "registered_name": "Scale"}
    with pytest.raises(Rejected) as info:
        scan_keras_config({"class_name": "Sequential", "config": {"layers": [layer]}})
    assert "register_keras_serializable" in str(info.value)
    assert "KERAS_EXTRA_ALLOWED_OBJECTS=my_pkg>ClassName" in str(info.value)


def test_settings_accept_registered_names_and_check_modules():
    env = {
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "KERAS_EXTRA_ALLOWED_OBJECTS": f"{NAME},my_layers.Scale",
    }
    settings = Settings.from_env({**env, "KERAS_CUSTOM_OBJECT_MODULES": MODULE})
    assert settings.keras_extra_allowed_objects == {NAME, "my_layers.Scale"}
    assert settings.keras_custom_object_modules == (MODULE,)
    with pytest.raises(SettingsError, match="KERAS_CUSTOM_OBJECT_MODULES"):
        Settings.from_env({**env, "KERAS_CUSTOM_OBJECT_MODULES": "no_such_module_h23"})
    with pytest.raises(SettingsError, match="KERAS_EXTRA_ALLOWED_OBJECTS"):
        Settings.from_env({**env, "KERAS_EXTRA_ALLOWED_OBJECTS": "a>b>c"})


def test_allowed_but_not_registered_in_the_sandbox_fails_to_load_naming_the_module_setting(
    settings: Settings, tmp_path: Path
):
    """Allowlisting alone is not enough: Keras finds a custom class only once its module ran."""
    v = Validator(replace(settings, keras_extra_allowed_objects=frozenset({NAME})))
    try:
        with pytest.raises(Rejected) as info:
            v.validate_keras(_save(tmp_path / "m.keras", main_module=True), tmp_path / "work")
    finally:
        v.close()
    assert info.value.code == "load_failed"
    assert "KERAS_CUSTOM_OBJECT_MODULES" in str(info.value)
