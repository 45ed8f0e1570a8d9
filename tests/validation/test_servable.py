"""SavedModel uploads must serve the way Vertex's prebuilt TF containers (TF Serving) load them:
MetaGraph tagged "serve", variables restored through its saver_def. `tf.saved_model.load` alone
is not enough: a Keras 3 model saved with `tf.saved_model.save(model)` passes it and then fails
every prediction in TF Serving with "Could not find variable" (tensorflow/serving#2250)."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest
import tensorflow as tf

from handlers.errors import Rejected


def _keras_model() -> keras.Model:
    keras.utils.set_random_seed(5)
    return keras.Sequential(
        [keras.Input((4,), name="x"), keras.layers.Dense(8, name="h"), keras.layers.Dense(3)]
    )


def test_keras3_model_saved_with_tf_saved_model_save_is_rejected(validator, tmp_path: Path):
    directory = tmp_path / "upload"
    tf.saved_model.save(_keras_model(), str(directory))
    assert "serving_default" in tf.saved_model.load(str(directory)).signatures  # TF2 loads it
    with pytest.raises(Rejected) as caught:
        validator.validate_saved_model(directory, tmp_path / "work")
    assert caught.value.code == "savedmodel.not_servable"
    assert "model.export(dir)" in str(caught.value)
    assert "Could not find variable" in str(caught.value)


def test_keras3_model_export_passes(validator, tmp_path: Path):
    directory = tmp_path / "upload"
    _keras_model().export(str(directory))
    report = validator.validate_saved_model(directory, tmp_path / "work")
    assert report.smoke_test == "passed"
    assert [t.shape for t in report.outputs] == [(None, 3)]
