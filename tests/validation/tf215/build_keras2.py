"""Builds Keras 2 artifacts with the Keras 2 of whichever interpreter runs it: tf.keras of
TensorFlow 2.15.1 (`.venv-tf215/bin/python`) or `tf_keras` on TensorFlow 2.21 (`.venv`, with
`TF_USE_LEGACY_KERAS=1`). Never imports `handlers`.

    python build_keras2.py OUT_DIR [KIND ...]

Writes OUT_DIR/<kind> for each kind (all when none are named) and prints a JSON object
{kind: {"path": ..., "input": name, "dtype": ..., "shape": [...]}} on stdout.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf

if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    keras = tf.keras
L = keras.layers


def _dense() -> keras.Model:
    x = keras.Input((4,), name="x")
    return keras.Model(x, L.Dense(2)(L.Dense(3, activation="relu")(x)))


def _sequential() -> keras.Model:
    return keras.Sequential([keras.Input((4,), name="x"), L.Dense(2)])


def _cnn() -> keras.Model:
    x = keras.Input((16, 16, 3), name="img")
    h = L.Conv2D(4, 3, activation="relu")(L.Rescaling(1 / 255.0)(x))
    h = L.GlobalAveragePooling2D()(L.BatchNormalization()(h))
    return keras.Model(x, L.Dense(3, activation="softmax")(h))


def _lstm() -> keras.Model:
    x = keras.Input((6, 3), name="seq")
    return keras.Model(x, L.Dense(2)(L.LSTM(4)(x)))


def _text() -> keras.Model:
    vectorize = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorize.adapt(tf.constant(["the cat sat", "the dog ran far", "a cat ran"]))
    x = keras.Input((1,), dtype=tf.string, name="text")
    h = L.GlobalAveragePooling1D()(L.Embedding(21, 4)(vectorize(x)))
    return keras.Model(x, L.Dense(2)(h))


class _Module(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(tf.ones([4, 2]), name="w")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.nn.relu(tf.matmul(x, self.w))}


MODELS = {"dense": _dense, "sequential": _sequential, "cnn": _cnn, "lstm": _lstm, "text": _text}
# kind -> (model, how it is saved)
KINDS = {
    "keras2_functional.keras": ("dense", "keras_file"),
    "keras2_sequential.keras": ("sequential", "keras_file"),
    "k2_dense_savedmodel": ("dense", "savedmodel"),
    "k2_cnn_savedmodel": ("cnn", "savedmodel"),
    "k2_lstm_savedmodel": ("lstm", "savedmodel"),
    "k2_text_savedmodel": ("text", "savedmodel"),
    "k2_cnn_export": ("cnn", "export"),
    "k2_lstm_export": ("lstm", "export"),
    "k2_text_export": ("text", "export"),
    "tf_module": ("module", "module"),
}


def build(out: str, kind: str) -> str:
    name, how = KINDS[kind]
    path = os.path.join(out, kind)
    tf.random.set_seed(7)
    if how == "module":
        module = _Module()
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
        return path
    model = MODELS[name]()
    if how == "keras_file":
        model.save(path)
    elif how == "savedmodel":
        model.save(path, save_format="tf")  # Keras 2's SavedModel format
    else:
        model.export(path)
    return path


def main(argv: list[str]) -> int:
    out, kinds = argv[0], argv[1:] or list(KINDS)
    os.makedirs(out, exist_ok=True)
    stdout, sys.stdout = sys.stdout, sys.stderr  # model.export prints its signatures
    found = {kind: {"path": build(out, kind), "tf": tf.__version__} for kind in kinds}
    json.dump(found, stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
