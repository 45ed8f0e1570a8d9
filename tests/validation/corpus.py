"""Builders for hostile (and benign) artifacts, with plain zipfile/h5py/json where possible."""

from __future__ import annotations

import base64
import copy
import json
import marshal
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

METADATA = {"keras_version": "3.15.1", "date_saved": "2000-01-01@00:00:00"}


def sentinel_code(sentinel: Path) -> str:
    """base64 marshal of a function that would create `sentinel` if it ever ran (Lambda payload)."""
    namespace: dict[str, Any] = {}
    exec(f"def f(x):\n    open({str(sentinel)!r}, 'w').write('pwned')\n    return x", namespace)
    return base64.b64encode(marshal.dumps(namespace["f"].__code__)).decode()


def lambda_layer(sentinel: Path, name: str = "evil") -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": name,
            "function": {
                "class_name": "__lambda__",
                "config": {"code": sentinel_code(sentinel), "defaults": None, "closure": None},
            },
        },
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }


def read_member(keras_file: Path, name: str) -> bytes:
    with zipfile.ZipFile(keras_file) as zf:
        return zf.read(name)


def write_keras(
    path: Path,
    config: Any,
    *,
    weights: bytes | None = None,
    metadata: Any = None,
    extra: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(metadata or METADATA))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", weights if weights is not None else empty_h5(path))
        for name, data in (extra or {}).items():
            zf.writestr(name, data, compress_type=compression)
    return path


def empty_h5(near: Path) -> bytes:
    tmp = near.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        h5.create_group("layers")
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def with_layer(base_config: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """A copy of a functional config with `layer` appended to its layers."""
    config = copy.deepcopy(base_config)
    config["config"]["layers"].append(layer)
    return config


def h5_with_external_link(path: Path, target: str) -> bytes:
    tmp = path.with_suffix(".tmp.h5")
    with h5py.File(tmp, "w") as h5:
        h5.create_group("layers/dense/vars")
        h5["layers/dense/vars/0"] = h5py.ExternalLink(target, "/secret")
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def legacy_h5(path: Path) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps({"class_name": "Sequential"})
        h5.create_dataset("model_weights/dense/kernel", data=np.zeros((4, 3), "float32"))
    return path


# --- A corpus of real models, built from Keras' and TensorFlow's own code (random weights) -----
# Used by tests/validation/test_corpus.py; every builder returns the artifact's path.

# keras.applications architectures: smallest input each accepts (include_top, 10 classes).
APPLICATIONS = {
    **dict.fromkeys(("MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large"), 32),
    **dict.fromkeys(("ResNet50", "ResNet101", "ResNet152"), 32),
    **dict.fromkeys(("ResNet50V2", "ResNet101V2", "ResNet152V2"), 32),
    **dict.fromkeys(("DenseNet121", "DenseNet169", "DenseNet201"), 32),
    **dict.fromkeys((f"EfficientNetB{i}" for i in range(8)), 32),
    **dict.fromkeys(
        ("EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3"), 32
    ),
    **dict.fromkeys(("EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L"), 32),
    **dict.fromkeys(("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge"), 32),
    **dict.fromkeys(("VGG16", "VGG19"), 32),
    "NASNetMobile": 32,
    "NASNetLarge": 32,
    "Xception": 71,
    "InceptionV3": 75,
    "InceptionResNetV2": 75,
}
# Left out: ConvNeXtXLarge (350 M parameters: 1.4 GB of weights, more than the test sandbox's
# 3 GB budget holds while loading and exporting).
TOO_LARGE = ("ConvNeXtXLarge",)
# What `make test` builds by default (the layers keras.applications defines itself, and two
# common small architectures); REGISTRAR_CORPUS=all builds every architecture above.
DEFAULT_APPLICATIONS = (  # make test: the two formerly refused, and two common small ones
    "ConvNeXtTiny",  # keras.src.applications.convnext.LayerScale
    "InceptionResNetV2",  # keras.src.applications.inception_resnet_v2.CustomScaleLayer
    "MobileNetV3Small",
    "EfficientNetB0",
)


def build_application(name: str, path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(3)
    size = APPLICATIONS[name]
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    model.save(path)
    return path


def layer_zoo() -> dict[str, Any]:
    """Keras 3 models of the built-in preprocessing, recurrent and attention layers."""
    import keras

    L = keras.layers
    keras.utils.set_random_seed(4)
    models: dict[str, Any] = {}
    x = keras.Input((3,), name="x")
    norm = L.Normalization()
    norm.adapt(np.arange(12, dtype="float32").reshape(4, 3))
    bins = L.Discretization(bin_boundaries=[0.0, 1.0])(x)
    models["normalization_discretization"] = keras.Model(
        x, L.Dense(2)(L.Concatenate()([norm(x), bins]))
    )
    words = keras.Input((2,), dtype="string", name="words")
    ints = keras.Input((2,), dtype="int64", name="ints")
    looked = L.StringLookup(vocabulary=["a", "b", "c"], output_mode="multi_hot")(words)
    counted = L.IntegerLookup(vocabulary=[1, 2, 3], output_mode="one_hot")(ints)
    hashed = L.CategoryEncoding(8, output_mode="multi_hot")(L.Hashing(8)(words))
    merged = L.Concatenate()([looked, L.Flatten()(counted), hashed])
    models["lookups_hashing"] = keras.Model([words, ints], L.Dense(2)(merged))
    text = keras.Input((1,), dtype="string", name="text")
    vectorize = L.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorize.adapt(["the cat sat", "the dog ran far", "a cat ran"])
    pooled = L.GlobalAveragePooling1D()(L.Embedding(21, 4)(vectorize(text)))
    models["text_vectorization"] = keras.Model(text, L.Dense(2)(pooled))
    image = keras.Input((20, 20, 3), name="image")
    h = L.CenterCrop(16, 16)(L.Resizing(18, 18)(L.Rescaling(1 / 255.0)(image)))
    h = L.RandomFlip()(L.RandomRotation(0.1)(L.RandomZoom(0.1)(h)))
    models["image_preprocessing"] = keras.Model(image, L.Dense(2)(L.GlobalAveragePooling2D()(h)))
    seq = keras.Input((6, 3), name="seq")
    r = L.SimpleRNN(4, return_sequences=True)(seq)
    r = L.GRU(4, return_sequences=True)(r)
    r = L.Bidirectional(L.LSTM(3, return_sequences=True))(r)
    r = L.ConvLSTM1D(2, 2, return_sequences=False)(L.Reshape((6, 6, 1))(r))
    models["recurrent"] = keras.Model(seq, L.Dense(2)(L.Flatten()(r)))
    q = keras.Input((5, 8), name="q")
    a = L.MultiHeadAttention(2, 4)(q, q)
    a = L.GroupQueryAttention(4, 2, 1)(a, a)
    a = L.Attention()([a, q])
    a = L.AdditiveAttention()([a, q])
    a = L.LayerNormalization()(a + q)
    models["attention"] = keras.Model(q, L.Dense(2)(L.GlobalMaxPooling1D()(a)))
    return models


def exported(directory: Path, which: str) -> Path:
    """A Keras 3 `model.export()` SavedModel, or a `tf.Module` saved with tf.saved_model.save."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(5)
    L = keras.layers
    if which == "export_cnn":
        x = keras.Input((16, 16, 3), name="img")
        h = L.GlobalAveragePooling2D()(L.BatchNormalization()(L.Conv2D(4, 3)(x)))
        keras.Model(x, L.Dense(3)(h)).export(str(directory))
    elif which == "export_rnn":
        t = keras.Input((7,), dtype="int32", name="tokens")
        h = L.Bidirectional(L.LSTM(3))(L.Embedding(20, 4)(t))
        keras.Model(t, L.Dense(2)(h)).export(str(directory))
    elif which == "tf_module_table":
        module = tf.Module()
        module.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(["a", "b"], [1, 2], tf.string, tf.int64), -1
        )
        module.w = tf.Variable(tf.ones([1, 2]), name="w")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="word")])
        def serve(word: Any) -> dict[str, Any]:
            ids = tf.cast(module.table.lookup(word), tf.float32)
            return {"y": tf.expand_dims(ids, -1) * module.w}

        module.serve = serve
        tf.saved_model.save(module, str(directory), signatures={"serving_default": serve})
    else:
        raise ValueError(which)
    return directory
