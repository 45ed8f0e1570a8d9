"""Models must serve real inputs, not only zeros: every upload is also called on a seeded random
sample of its declared inputs, and a SavedModel served the TF Serving way must give
tf.saved_model.load's outputs on that sample too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from handlers.errors import Rejected
from handlers.validation.sandbox import feeds


def _saved_model(path: Path, fn: Any, spec: tf.TensorSpec) -> Path:
    module = tf.Module()
    module.serve = tf.function(fn, input_signature=[spec])
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _rejected(validator: Any, directory: Path, tmp_path: Path) -> Rejected:
    with pytest.raises(Rejected) as info:
        validator.validate_saved_model(directory, tmp_path / "work")
    return info.value


def test_a_gather_indexed_by_the_input_is_rejected(validator, tmp_path):
    """Index 0 for zeros, out of range for anything else."""

    def serve(x: Any) -> Any:
        return {"y": tf.gather(tf.constant([1.0]), tf.cast(x * 100.0, tf.int32))}

    model = _saved_model(tmp_path / "gather", serve, tf.TensorSpec([None, 3], tf.float32, "x"))
    error = _rejected(validator, model, tmp_path)
    assert error.code == "smoke.sample_failed", str(error)
    assert "seeded random sample" in str(error) and "InvalidArgumentError" in str(error)


def test_an_assertion_that_only_zeros_pass_is_rejected(validator, tmp_path):
    def serve(x: Any) -> Any:
        tf.debugging.assert_equal(x, tf.zeros_like(x))
        return {"y": x * 2.0}

    model = _saved_model(tmp_path / "assert", serve, tf.TensorSpec([None, 3], tf.float32, "x"))
    assert _rejected(validator, model, tmp_path).code == "smoke.sample_failed"


def test_served_outputs_that_differ_on_the_sample_are_rejected(validator, tmp_path):
    """Zeros hide it (0 * anything): the two loads draw different random factors. (seed=0,
    seed2=0: a random seed per kernel, whatever global seed an earlier test set.)"""

    def serve(x: Any) -> Any:
        noise = tf.raw_ops.RandomUniform(shape=[3], dtype=tf.float32, seed=0, seed2=0)
        return {"y": x * (1.0 + noise)}

    model = _saved_model(tmp_path / "random", serve, tf.TensorSpec([None, 3], tf.float32, "x"))
    error = _rejected(validator, model, tmp_path)
    assert error.code == "savedmodel.serving_mismatch", str(error)
    assert "(output 'y' differs)" in str(error)


def test_a_keras_model_that_fails_on_the_sample_is_rejected(validator, tmp_path):
    """An Embedding with one row: index 0 (zeros) works, index 1 does not."""
    import keras

    ids = keras.Input((2,), dtype="int32", name="ids")
    model = keras.Model(ids, keras.layers.Embedding(1, 4, name="emb")(ids))
    model.save(tmp_path / "emb.keras")
    with pytest.raises(Rejected) as info:
        validator.validate_keras(tmp_path / "emb.keras", tmp_path / "work")
    assert info.value.code == "smoke.sample_failed", str(info.value)


def test_string_inputs_are_tested_with_short_ascii(validator, tmp_path):
    def serve(text: Any) -> Any:
        return {"n": tf.strings.length(text)}

    model = _saved_model(tmp_path / "text", serve, tf.TensorSpec([None], tf.string, "text"))
    report = validator.validate_saved_model(model, tmp_path / "work")
    assert report.smoke_test == "passed"


def test_a_string_model_that_wants_images_is_let_through_as_before(validator, tmp_path):
    """Encoded-image inputs cannot be synthesised: smoke skipped, in our words, not rejected."""

    def serve(image: Any) -> Any:
        return {"pixels": tf.reduce_sum(tf.cast(tf.io.decode_png(image[0]), tf.float32))}

    model = _saved_model(tmp_path / "png", serve, tf.TensorSpec([None], tf.string, "image"))
    report = validator.validate_saved_model(model, tmp_path / "work")
    assert report.smoke_test == (
        "skipped: input 'image' is a string and the model did not accept short ASCII text "
        "(e.g. it expects encoded images)"
    )


def test_the_sample_is_seeded_and_within_the_declared_inputs():
    specs = {
        "f": tf.TensorSpec([None, 3], tf.float32),
        "h": tf.TensorSpec([2], tf.bfloat16),
        "i": tf.TensorSpec([None, None], tf.int64),
        "b": tf.TensorSpec([4], tf.bool),
        "s": tf.TensorSpec([None], tf.string),
    }
    a, b = feeds.sample(specs), feeds.sample(specs)
    for name in specs:
        np.testing.assert_array_equal(a[name], b[name])
    assert a["f"].shape == (2, 3) and a["f"].dtype == np.float32
    assert -1 <= a["f"].min() and a["f"].max() <= 1 and np.any(a["f"] != 0)
    assert str(a["h"].dtype) == "bfloat16"
    assert a["i"].shape == (2, 2) and set(np.unique(a["i"])) <= {0, 1}
    assert a["b"].dtype == bool
    assert all(w.isascii() and w.isalpha() and 1 <= len(w) <= 8 for w in a["s"])
    zeros = feeds.zeros(specs)
    assert zeros["f"].shape == (1, 3) and not zeros["f"].any()
    assert zeros["s"].tolist() == [b""]
