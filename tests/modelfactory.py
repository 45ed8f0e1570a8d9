"""Tiny, real, deterministic TensorFlow/Keras models for tests (TF imported lazily, per call).

`build_keras_model` writes a small Dense `.keras` file; `build_saved_model` writes a SavedModel
directory with an explicit `serving_default` signature, optionally split into several
`variables.data-0000i-of-0000N` shards. Different seeds give different weights (and bytes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _dense_model(*, seed: int, input_dim: int, units: int) -> Any:
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = keras.Input(shape=(input_dim,), name="x", dtype="float32")
    outputs = keras.layers.Dense(units, name="dense")(inputs)
    model = keras.Model(inputs, outputs, name=f"tiny_{seed}")
    kernel = rng.standard_normal((input_dim, units)).astype("float32")
    bias = rng.standard_normal((units,)).astype("float32")
    model.get_layer("dense").set_weights([kernel, bias])
    return model


def build_keras_model(path: Path, *, seed: int = 0, input_dim: int = 4, units: int = 3) -> Path:
    """Write a tiny functional Dense model (input `x`: float32[?, input_dim]) to `path` (.keras)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _dense_model(seed=seed, input_dim=input_dim, units=units).save(path)
    _normalise_keras_zip(path)
    return path


def _normalise_keras_zip(path: Path) -> None:
    """Pin the save date and member timestamps so equal seeds give byte-identical files."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in members:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = "2000-01-01@00:00:00"
                data = json.dumps(meta).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            zf.writestr(fixed, data)


def build_saved_model(
    dir: Path, *, seed: int = 0, shards: int = 1, input_dim: int = 4, units: int = 3
) -> Path:
    """Write a SavedModel (`tf.saved_model.save`, explicit `serving_default`) to `dir`.

    With `shards > 1` the model gets `shards` equally sized variables and a max-shard-size policy,
    so TF writes `variables/variables.data-0000i-of-0000N` for i < N == shards.
    """
    import numpy as np
    import tensorflow as tf

    dir = Path(dir)
    dir.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    module = tf.Module()
    n = max(1, shards)
    # Split the kernel's columns over n variables so the shard policy has n pieces to place.
    module.kernels = [
        tf.Variable(
            rng.standard_normal((input_dim, units)).astype("float32"),
            name=f"kernel_{i}",
        )
        for i in range(n)
    ]
    # A constant bias: a separate bias variable would be an extra shard.
    bias = tf.constant(rng.standard_normal((units,)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, input_dim], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        y = bias
        for k in module.kernels:
            y = y + tf.matmul(x, k)
        return {"y": y}

    module.serve = serve
    options = None
    if n > 1:
        per_var = input_dim * units * 4
        policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=per_var)
        options = tf.saved_model.SaveOptions(experimental_sharding_callback=policy)
    tf.saved_model.save(module, str(dir), signatures={"serving_default": serve}, options=options)
    return dir


def build_saved_model_with_asset(dir: Path, *, seed: int = 0, input_dim: int = 4) -> Path:
    """A SavedModel whose graph reads a vocabulary asset (assets/vocab.txt) at load time."""
    import tempfile

    import tensorflow as tf

    dir = Path(dir)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_text("".join(f"token{i}\n" for i in range(5 + seed)))
        module = tf.Module()
        module.vocab = tf.saved_model.Asset(str(vocab))
        initializer = tf.lookup.TextFileInitializer(
            module.vocab,
            tf.string,
            tf.lookup.TextFileIndex.WHOLE_LINE,
            tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        module.table = tf.lookup.StaticHashTable(initializer, default_value=-1)
        module.weight = tf.Variable(tf.ones([input_dim, 1]) * (seed + 1), name="w")

        @tf.function(input_signature=[tf.TensorSpec([None, input_dim], tf.float32, name="x")])
        def serve(x: Any) -> dict[str, Any]:
            size = tf.cast(module.table.size(), tf.float32)
            return {"y": tf.matmul(x, module.weight) + size}

        module.serve = serve
        tf.saved_model.save(module, str(dir), signatures={"serving_default": serve})
    return dir
