"""Large `.keras` files in the sandbox: weights are read from the stored zip member in place into
the variables (no extracted or in-memory copy of model.weights.h5, no random initialisation first),
the result is exactly what `keras.saving.load_model(safe_mode=True)` gives, and safe_mode still
refuses code even when the static scanner is bypassed."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from handlers.validation.sandbox import keras_load as loader
from tests import modelfactory
from tests.validation import corpus

_MIB = 1024**2


def _fill(model: Any, seed: int) -> None:
    """Give every variable (BatchNorm statistics and seeds included) non-initial values."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        dtype = np.dtype(
            keras.backend.standardize_dtype(variable.dtype).replace("bfloat16", "float32")
        )
        if dtype.kind in "iu":
            value = rng.integers(1, 1000, size=variable.shape)
        else:
            value = rng.standard_normal(variable.shape) * 0.1 + 0.5
        variable.assign(value.astype(dtype))


def _zoo(path: Path) -> Path:
    """Many layer kinds, dtypes (float16, bfloat16, int) and nesting; several weights > 1 MiB."""
    x = keras.Input((64,), name="x")
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    h = keras.layers.Dense(1024, name="wide")(x)  # 256 KiB kernel: Keras' ordinary path
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dropout(0.5, seed=3, name="drop")(h)
    h = keras.layers.Dense(512, name="big")(h)  # 2 MiB kernel: adopted without a copy
    h16 = keras.layers.Dense(1024, dtype="float16", name="half")(h)  # 1 MiB float16 kernel
    hb = keras.layers.Dense(1024, dtype="bfloat16", name="brain")(h)  # bfloat16: Keras' path
    inner = keras.Sequential(
        [keras.Input((1024,)), keras.layers.Dense(16, name="inner_dense")], name="inner"
    )
    e = keras.layers.Embedding(2048, 160, name="embed")(tokens)  # 1.25 MiB table
    e = keras.layers.LSTM(8, name="lstm")(e)
    merged = keras.layers.Concatenate(name="cat")(
        [inner(keras.ops.cast(h16, "float32")), keras.ops.cast(hb, "float32"), e]
    )
    model = keras.Model([x, tokens], keras.layers.Dense(3, name="head")(merged), name="zoo")
    _fill(model, seed=11)
    model.save(path)
    return path


def _dense(path: Path, d: int, seed: int = 5) -> Path:
    x = keras.Input((d,), name="x")
    model = keras.Model(x, keras.layers.Dense(d, name="dense")(x))
    _fill(model, seed)
    model.save(path)
    return path


def _inputs(model: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [
        rng.integers(0, 2048, (2, *t.shape[1:])).astype(t.dtype)
        if "int" in str(t.dtype)
        else rng.standard_normal((2, *t.shape[1:])).astype(t.dtype)
        for t in model.inputs
    ]


def _assert_same_model(ours: Any, path: Path) -> None:
    ref = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert [v.path for v in ours.weights] == [v.path for v in ref.weights]
    for a, b in zip(ours.weights, ref.weights, strict=True):
        assert a.dtype == b.dtype, a.path
        np.testing.assert_array_equal(np.asarray(a.numpy()), np.asarray(b.numpy()), err_msg=a.path)
    x = _inputs(ref)
    np.testing.assert_array_equal(np.asarray(ours(x)), np.asarray(ref(x)))


def _assert_unpatched() -> None:
    variable_class = loader._TFVariable
    assert variable_class._direct_assign.__qualname__ == "Variable._direct_assign"
    assert variable_class._convert_to_tensor.__qualname__ == "Variable._convert_to_tensor"
    state = loader.global_state.get_global_attribute("uninitialized_variables", [])
    assert not state


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _zoo(tmp_path_factory.mktemp("zoo") / "zoo.keras")


def test_in_place_load_equals_load_model(zoo, capfd):
    plan = loader._in_place_plan(str(zoo))
    assert plan is not None, "the zoo model must take the in-place path for this test to mean it"
    config, offset, size = plan
    assert json.loads(config)["class_name"] in ("Functional", "Sequential")
    with zipfile.ZipFile(zoo) as archive:  # the plan points exactly at the stored weights
        info = archive.getinfo("model.weights.h5")
    assert size == info.file_size and offset > info.header_offset
    ours = loader.load_keras_model(str(zoo))
    assert "fell back" not in capfd.readouterr().err
    _assert_same_model(ours, zoo)
    _assert_unpatched()


def test_compressed_weights_take_load_model(zoo, tmp_path, capfd):
    deflated = tmp_path / "deflated.keras"
    with zipfile.ZipFile(zoo) as src, zipfile.ZipFile(deflated, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
    assert loader._in_place_plan(str(deflated)) is None
    _assert_same_model(loader.load_keras_model(str(deflated)), zoo)
    assert "fell back" not in capfd.readouterr().err


def test_in_place_load_has_no_weight_copies(tmp_path):
    path = _dense(tmp_path / "m.keras", d=3464)  # 48 MiB kernel
    warm = _dense(tmp_path / "warm.keras", d=8)
    weights = 3464 * 3465 * 4
    # A fresh process: TensorFlow keeps freed buffers for reuse, which would hide copies here.
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(warm), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak = int(done.stdout.split()[-1])
    # load_model: random init first (~3x here), then the member in a BytesIO and a copy per weight.
    assert peak < 1.25 * weights + 16 * _MIB, f"peak grew {peak / _MIB:.0f} MiB"


_PEAK_SCRIPT = """
import gc, sys
from pathlib import Path
import handlers.validation.sandbox.keras_load as ops
def status(field):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
    return int(line.split()[1]) * 1024
ops.load_keras_model(sys.argv[1])  # lazy imports and first-call caches
gc.collect()
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
before = status("VmRSS:")
model = ops.load_keras_model(sys.argv[2])
print(status("VmHWM:") - before)
"""


def test_safe_mode_holds_without_the_static_scan(validator, valid_keras, tmp_path, sentinel):
    config = json.loads(corpus.read_member(valid_keras, "config.json"))
    hostile = corpus.write_keras(
        tmp_path / "lambda.keras",
        corpus.with_layer(config, corpus.lambda_layer(sentinel)),
        weights=corpus.read_member(valid_keras, "model.weights.h5"),
    )
    plan = loader._in_place_plan(str(hostile))
    assert plan is not None
    with pytest.raises(ValueError, match="safe_mode"):
        loader._load_in_place(str(hostile), *plan)
    _assert_unpatched()
    # And through the worker (the scanner would have stopped this before the sandbox).
    answer = validator.sandbox.request(
        {"op": "keras", "path": str(hostile), "export_dir": str(tmp_path / "export")},
        what="hostile",
    )
    assert answer["ok"] is False and answer["code"] == "load_failed", answer
    assert "safe_mode" in answer["message"]


def test_large_keras_through_the_sandbox(validator, tmp_path):
    import tensorflow as tf

    path = _dense(tmp_path / "model.keras", d=2048, seed=9)  # 16 MiB
    expected = keras.saving.load_model(path, compile=False)
    x = np.random.default_rng(2).standard_normal((3, 2048)).astype("float32")
    report = validator.validate_keras(path, tmp_path / "work")
    assert report.smoke_test == "passed" and path.exists()
    loaded = tf.saved_model.load(str(report.saved_model_dir))
    (y,) = loaded.signatures["serving_default"](x=tf.constant(x)).values()
    np.testing.assert_allclose(y.numpy(), np.asarray(expected(x)), rtol=1e-5, atol=1e-5)


def test_release_source_deletes_the_input_after_loading(validator, tmp_path):
    path = modelfactory.build_keras_model(tmp_path / "src" / "model.keras", seed=4)
    answer = validator.sandbox.request(
        {
            "op": "keras",
            "path": str(path),
            "export_dir": str(tmp_path / "export"),
            "release_source": True,
        },
        what="release",
    )
    assert answer["ok"] is True and answer["smoke"] == "passed", answer
    assert not path.exists() and (tmp_path / "export" / "saved_model.pb").is_file()
