"""Hostile and broken SavedModels, and models that load but fail the smoke test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from handlers.errors import Rejected
from handlers.validation.validator import Validator


def _rejected(validator: Validator, path: Path, tmp_path: Path, code: str) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.validate_saved_model(path, tmp_path / "work")
    assert info.value.code == code, str(info.value)
    return info.value


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "model"))


def test_corrupted_saved_model_pb(validator, valid_saved_model, tmp_path):
    model = _copy(valid_saved_model, tmp_path)
    pb = model / "saved_model.pb"
    data = pb.read_bytes()
    pb.write_bytes(data[: len(data) // 3])
    _rejected(validator, model, tmp_path, "savedmodel.bad_proto")


def test_missing_shard(validator, valid_saved_model, tmp_path):
    model = _copy(valid_saved_model, tmp_path)
    (model / "variables" / "variables.data-00001-of-00003").unlink()
    error = _rejected(validator, model, tmp_path, "savedmodel.missing_shard")
    assert "variables.data-00001-of-00003" in str(error)


def test_truncated_shard(validator, valid_saved_model, tmp_path):
    model = _copy(valid_saved_model, tmp_path)
    shard = model / "variables" / "variables.data-00002-of-00003"
    shard.write_bytes(shard.read_bytes()[:10])
    _rejected(validator, model, tmp_path, "savedmodel.truncated_shard")


def test_without_serving_default(validator, tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.f = tf.function(
        lambda x: x * module.v, input_signature=[tf.TensorSpec([None], tf.float32)]
    )
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"predict": module.f})
    error = _rejected(validator, tmp_path / "model", tmp_path, "savedmodel.missing_serving_default")
    assert "predict" in str(error)


def test_file_reading_op_in_serving_graph(validator, tmp_path, sentinel):
    import tensorflow as tf

    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def serve(x):
        tf.io.write_file(str(sentinel), tf.io.read_file("/etc/hostname"))
        return {"y": x}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "model"), signatures={"serving_default": serve})
    _rejected(validator, tmp_path / "model", tmp_path, "savedmodel.disallowed_op")


def test_nan_weights_fail_smoke_test(validator, tmp_path):
    import keras
    import numpy as np

    inputs = keras.Input(shape=(4,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs))
    model.get_layer("d").set_weights([np.full((4, 2), np.nan, "float32"), np.zeros(2, "float32")])
    model.save(tmp_path / "nan.keras")
    with pytest.raises(Rejected) as info:
        validator.validate_keras(tmp_path / "nan.keras", tmp_path / "work")
    assert info.value.code == "smoke.non_finite", str(info.value)


def test_files_of_two_saves_are_caught_by_the_fingerprint(validator, tmp_path):
    from tests.modelfactory import build_saved_model

    first = build_saved_model(tmp_path / "first", seed=10)
    second = build_saved_model(tmp_path / "second", seed=11)
    shutil.rmtree(first / "variables")
    shutil.copytree(second / "variables", first / "variables")  # same graph, other weights
    error = _rejected(validator, first, tmp_path, "savedmodel.fingerprint_mismatch")
    assert "checkpoint_hash" in str(error)
