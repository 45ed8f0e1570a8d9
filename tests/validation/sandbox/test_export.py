"""The SavedModel exported from a `.keras` upload: a bare tf.Module (variables + serving function)
that TF Serving's loader and `tf.saved_model.load` both serve with the Keras model's outputs, a
Keras-object fallback for models the bare module cannot hold, and a reload that must reproduce
the Keras outputs (`export.mismatch` otherwise)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from handlers.errors import Rejected
from handlers.validation.sandbox import tf_ops as sandbox_tf
from handlers.validation.sandbox.protocol import Failure
from handlers.validation.validator import Validator


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many layer kinds and dtypes; Keras' own initial weights (test_large_keras' zoo fills
    them with values that overflow float16, which the smoke test rightly rejects)."""
    keras.utils.set_random_seed(7)
    x = keras.Input((64,), name="x")
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Dense(256, name="wide")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dropout(0.5, seed=3, name="drop")(h)
    h16 = keras.layers.Dense(64, dtype="float16", name="half")(h)
    hb = keras.layers.Dense(64, dtype="bfloat16", name="brain")(h)
    inner = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, name="inner_dense")])
    e = keras.layers.LSTM(8, name="lstm")(keras.layers.Embedding(100, 16, name="embed")(tokens))
    merged = keras.layers.Concatenate(name="cat")(
        [inner(keras.ops.cast(h16, "float32")), keras.ops.cast(hb, "float32"), e]
    )
    model = keras.Model([x, tokens], keras.layers.Dense(3, name="head")(merged), name="zoo")
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full((256,), 0.1, "float32"))
    bn.moving_variance.assign(np.full((256,), 2.0, "float32"))
    path = tmp_path_factory.mktemp("zoo") / "zoo.keras"
    model.save(path)
    return path


def test_zoo_passes_the_whole_validation(validator, zoo, tmp_path):
    """Static scan included: Keras stores bfloat16 weights as 2-byte opaque HDF5 values tagged
    dtype="bfloat16", which the scan once took for non-numeric data (keras.bad_weights)."""
    copy = tmp_path / "zoo.keras"
    shutil.copy(zoo, copy)
    report = validator.validate_keras(copy, tmp_path / "work")
    assert report.smoke_test == "passed"
    assert sorted(t.name for t in report.inputs) == ["tokens", "x"]
    assert (report.saved_model_dir / "saved_model.pb").is_file()


def _serving_v1(export: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run serving_default the way TF Serving does: MetaGraph tagged "serve", variables restored
    through its saver_def, tensors named by the signature_def (not the Python object graph)."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export))
        signature = meta.signature_def["serving_default"]
        fetches = {k: v.name for k, v in signature.outputs.items()}
        feeds = {signature.inputs[k].name: v for k, v in feed.items()}
        return session.run(fetches, feeds)


def test_zoo_export_serves_the_keras_outputs(validator, zoo, tmp_path):
    """float16/bfloat16 layers, int inputs, LSTM, BatchNorm, Dropout, a nested model, sent to
    the worker directly (the whole validation is test_zoo_passes_the_whole_validation)."""
    export = tmp_path / "export"
    answer = validator.sandbox.request(
        {"op": "keras", "path": str(zoo), "export_dir": str(export)}, what="zoo"
    )
    assert answer["ok"] is True and answer["smoke"] == "passed", answer
    log = (validator.sandbox._home / "worker.log").read_text(errors="replace")  # type: ignore[operator]
    assert "tracking the model's resources" not in log  # the first, cheapest export worked
    assert sorted(t["name"] for t in answer["inputs"]) == ["tokens", "x"]
    assert [(t["name"], t["shape"]) for t in answer["outputs"]] == [("head", [None, 3])]

    model = keras.saving.load_model(zoo, safe_mode=True, compile=False)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 64)).astype("float32")
    tokens = rng.integers(0, 100, (2, 6)).astype("int32")
    expected = np.asarray(model([x, tokens], training=False))
    feed = {"x": x, "tokens": tokens}
    loaded = tf.saved_model.load(str(export))
    got = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in feed.items()})
    assert list(got) == ["head"]
    np.testing.assert_allclose(got["head"].numpy(), expected, rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(_serving_v1(export, feed)["head"], expected, rtol=2e-2, atol=2e-2)


def test_bare_export_stores_each_weight_once(tmp_path, capfd):
    x = keras.Input((256,), name="features")
    model = keras.Model(x, keras.layers.Dense(512, name="scores")(x))
    export = tmp_path / "export"
    specs, names = sandbox_tf._export_keras(model, str(export))
    assert "tracking the model's resources" not in capfd.readouterr().err
    assert [s.name for s in specs] == ["features"] and names == ["scores"]
    data = sum(p.stat().st_size for p in (export / "variables").iterdir())
    weights = 256 * 512 * 4 + 512 * 4
    assert weights <= data < weights + 4096  # once, not twice (keras#23553)
    loaded = tf.saved_model.load(str(export))
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["features"]
    assert list(signature.structured_outputs) == ["scores"]
    sample = np.ones((2, 256), "float32")
    np.testing.assert_allclose(
        _serving_v1(export, {"features": sample})["scores"],
        np.asarray(model(sample)),
        rtol=1e-5,
        atol=1e-5,
    )


def _int_lookup() -> tuple[Any, dict[str, np.ndarray]]:
    ids = keras.Input((3,), dtype="int64", name="ids")
    hot = keras.layers.IntegerLookup(vocabulary=[5, 7, 9], output_mode="one_hot")(ids)
    model = keras.Model(ids, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(hot)))
    return model, {"ids": np.array([[5, 9, 1]], "int64")}


def _string_lookup() -> tuple[Any, dict[str, np.ndarray]]:
    words = keras.Input((1,), dtype="string", name="words")
    index = keras.layers.StringLookup(vocabulary=["a", "b"])(words)
    model = keras.Model(words, keras.layers.Embedding(4, 2, name="out")(index))
    return model, {"words": np.array([[b"b"]])}


@pytest.mark.parametrize("build", [_int_lookup, _string_lookup])
def test_lookup_tables_are_exported_with_the_model(build, tmp_path, capfd):
    """Their hash tables are not variables: the export tracks them as Keras' export does. Both
    are smoke-tested (string inputs with short ASCII words, an out-of-vocabulary index here)."""
    model, feed = build()
    path = tmp_path / "lookup.keras"
    model.save(path)
    answer = sandbox_tf.load_keras(str(path), str(tmp_path / "export"))
    assert "tracking the model's resources" in capfd.readouterr().err
    assert answer["smoke"] == "passed"
    np.testing.assert_allclose(
        _serving_v1(tmp_path / "export", feed)["out"], np.asarray(model(*feed.values()))
    )


def test_a_reload_that_differs_from_keras_is_rejected(tmp_path, monkeypatch):
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, name="y")(x))
    path = tmp_path / "m.keras"
    model.save(path)
    original = sandbox_tf._keras_reference

    def skewed(*args: Any) -> Any:
        reference = original(*args)
        reference.expected = {k: v + 0.01 * (1 + np.abs(v)) for k, v in reference.expected.items()}
        return reference

    monkeypatch.setattr(sandbox_tf, "_keras_reference", skewed)
    with pytest.raises(Failure, match="differs from the Keras model") as caught:
        sandbox_tf.load_keras(str(path), str(tmp_path / "export"))
    assert caught.value.code == "export.mismatch"
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "export")
    assert sandbox_tf.load_keras(str(path), str(tmp_path / "export"))["smoke"] == "passed"


def test_an_export_tf_serving_cannot_restore_is_rejected(tmp_path, monkeypatch):
    """The export is checked the way TF Serving loads it, every time: saving the Keras object
    itself (the old export) passes tf.saved_model.load but not that check."""
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, name="y")(x))
    path = tmp_path / "m.keras"
    model.save(path)

    def keras_object_export(model: Any, export_dir: str) -> Any:
        tf.saved_model.save(model, export_dir)
        spec = tf.TensorSpec((None, 4), tf.float32, name="inputs")
        return [spec], ["output_0"]

    monkeypatch.setattr(sandbox_tf, "_export_keras", keras_object_export)
    with pytest.raises(Failure, match="Could not find variable") as caught:
        sandbox_tf.load_keras(str(path), str(tmp_path / "export"))
    assert caught.value.code == "savedmodel.not_servable"


def test_export_mismatch_is_a_specific_rejection(settings):
    class Answering:
        def request(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
            return {"ok": False, "code": "export.mismatch", "message": "output 'y' differs"}

    validator = Validator(settings)
    validator.sandbox = Answering()  # type: ignore[assignment]
    with pytest.raises(Rejected, match="does not reproduce the Keras model") as caught:
        validator._run({"op": "keras"}, what="m.keras")
    assert caught.value.code == "export.mismatch"
