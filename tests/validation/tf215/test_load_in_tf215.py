"""What the registrar registers loads in the serving container's TensorFlow (2.15, Vertex's newest
prebuilt image): the registrar's exports of the test models and an uploaded SavedModel are
loaded by TensorFlow 2.15.1 itself, the way TF Serving loads them, and give TF 2.21's outputs.
Models using what 2.15 lacks are rejected by the registrar's static check, and 2.15.1 shows why:
an op new since 2.15 (DecodeWebP) fails the load; an attribute new since 2.15 (MatMul.grad_a)
is dropped with "Unknown attributes will be ignored". One subprocess in `.venv-tf215` (made by
`make test`: target `tf215`) for all.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.errors import Rejected
from handlers.validation.report import ValidationReport
from handlers.validation.validator import Validator
from tests import modelfactory
from tests.validation.scan import savedmodels as sm

ROOT = Path(__file__).resolve().parents[3]
TF215 = ROOT / ".venv-tf215" / "bin" / "python"
LOADER = Path(__file__).with_name("load_in_tf215.py")

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
L = keras.layers


def _keras_models() -> dict[str, Any]:
    keras.utils.set_random_seed(5)
    models = {}
    x = keras.Input((16, 16, 3), name="img")
    h = L.Conv2D(4, 3, activation="relu")(L.Rescaling(1 / 255.0)(x))
    h = L.BatchNormalization()(h)
    h = L.GlobalAveragePooling2D()(L.DepthwiseConv2D(3)(L.MaxPooling2D()(h)))
    models["cnn"] = keras.Model(x, L.Dense(3, activation="softmax")(h))
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    r = L.GRU(4, return_sequences=True)(L.Embedding(20, 4)(tokens))
    models["rnn"] = keras.Model(tokens, L.Dense(2)(L.Bidirectional(L.LSTM(3))(r)))
    q = keras.Input((5, 8), name="seq")
    a = L.LayerNormalization()(L.MultiHeadAttention(2, 4)(q, q) + q)
    models["attention"] = keras.Model(q, L.Dense(2)(L.GlobalMaxPooling1D()(a)))
    words = keras.Input((3,), dtype="string", name="words")
    looked = L.StringLookup(vocabulary=["a", "b", "c"])(words)
    models["string_lookup"] = keras.Model(words, L.Flatten()(L.Embedding(5, 2)(looked)))
    v = keras.Input((8,), name="v")
    half = L.Dense(4, dtype="float16")(v)
    brain = L.Dense(4, dtype="bfloat16")(v)
    merged = L.Concatenate()([keras.ops.cast(half, "float32"), keras.ops.cast(brain, "float32")])
    models["mixed_precision"] = keras.Model(v, L.Dense(2)(merged))
    return models


def _feed(report: ValidationReport, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feed = {}
    for t in report.inputs:
        shape = [2 if d is None else d for d in t.shape]
        if t.dtype == "string":
            feed[t.name] = rng.choice(np.array([b"a", b"b", b"zz"]), shape)
        elif t.dtype.startswith("int"):
            feed[t.name] = rng.integers(0, 5, shape).astype(t.dtype)
        else:
            feed[t.name] = rng.standard_normal(shape).astype(t.dtype)
    return feed


def _outputs_in_tf221(directory: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fn = tf.saved_model.load(str(directory)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}


def _incompatible(tmp_path: Path) -> dict[str, Path]:
    w = tf.ones([4, 2])

    def webp(x: Any) -> Any:
        image = tf.raw_ops.DecodeWebP(contents=tf.constant(b""), channels=3)
        return x + tf.cast(tf.reduce_sum(image), tf.float32)

    return {
        "MatMul.grad_a": sm.save_serving(
            tmp_path / "grad_a", lambda x: tf.raw_ops.MatMul(a=x, b=w, grad_a=True)
        ),
        "DecodeWebP": sm.save_serving(tmp_path / "webp", webp),
    }


def _run_in_tf215(
    jobs: list[dict[str, Any]], python: Path = TF215
) -> tuple[list[dict[str, Any]], str]:
    """Run the loader's jobs in the serving TensorFlow's own venv (`python`)."""
    done = subprocess.run(
        [str(python), str(LOADER)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


PREBUILT_2_15 = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


@pytest.fixture
def validator_2_15(validator: Validator, monkeypatch: pytest.MonkeyPatch) -> Validator:
    """The shared validator, checking against Vertex's prebuilt 2.15 image (for users who stay
    on it until its end of availability; the default is TF Serving, tests/validation/tf220)."""
    settings = dataclasses.replace(validator.settings, serving_image=PREBUILT_2_15)
    monkeypatch.setattr(validator, "settings", settings)
    return validator


@pytest.mark.slow
def test_registered_models_load_in_tensorflow_2_15(validator_2_15: Validator, tmp_path: Path):
    validator = validator_2_15
    if not TF215.exists():
        pytest.fail(
            "no .venv-tf215: run `make tf215` (make test does) — this check must not be skipped"
        )
    rng = np.random.default_rng(12)
    registered: dict[str, tuple[Path, dict[str, np.ndarray]]] = {}
    for name, model in _keras_models().items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        report = validator.validate_keras(path, tmp_path / f"work-{name}")
        assert "loads in serving TensorFlow 2.15" in report.notes, report.notes
        registered[name] = (report.saved_model_dir, _feed(report, rng))
    dense = modelfactory.build_keras_model(tmp_path / "dense.keras")
    report = validator.validate_keras(dense, tmp_path / "work-dense")
    registered["dense"] = (report.saved_model_dir, _feed(report, rng))
    upload = modelfactory.build_saved_model_with_asset(tmp_path / "upload_with_asset")
    report = validator.validate_saved_model(upload, tmp_path / "work-upload")
    registered["uploaded_with_asset"] = (report.saved_model_dir, _feed(report, rng))

    incompatible = _incompatible(tmp_path)
    for what, directory in incompatible.items():
        with pytest.raises(Rejected) as info:
            validator.validate_saved_model(directory, tmp_path / "work-bad")
        assert info.value.code == "savedmodel.serving_incompatible"
        assert what.split(".")[-1] in str(info.value)

    jobs, expected = [], {}
    for name, (directory, feed) in registered.items():
        paths = {}
        for key, value in feed.items():
            paths[key] = str(tmp_path / f"{name}-{key}.npy")
            np.save(paths[key], value)
        jobs.append({"dir": str(directory), "feed": paths, "out": str(tmp_path / f"{name}.npz")})
        expected[name] = _outputs_in_tf221(directory, feed)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), np.float32))
    for directory in incompatible.values():
        jobs.append({"dir": str(directory), "feed": {"x": str(x)}, "out": str(tmp_path / "no.npz")})

    results, log = _run_in_tf215(jobs)
    for name, result in zip(registered, results, strict=False):
        assert result == {"ok": True, "tf": "2.15.1"}, f"{name}: {result}"
        got = dict(np.load(tmp_path / f"{name}.npz"))
        assert sorted(got) == sorted(expected[name]), name
        for key, value in expected[name].items():
            np.testing.assert_allclose(got[key], value, rtol=2e-3, atol=2e-3, err_msg=name)
    grad_a, webp = results[len(registered) :]
    assert not webp["ok"] and "Op type not registered 'DecodeWebP'" in webp["error"], webp
    assert grad_a == {"ok": True, "tf": "2.15.1"}, grad_a  # loads, without the attribute:
    assert "NodeDef mentions attribute grad_a which is not in the op definition" in log
    assert "Unknown attributes will be ignored" in log
    print(f"TF 2.15.1: {len(registered)} registered models load and agree with TF 2.21")


def test_committed_2_15_registry_is_what_tensorflow_2_15_registers():
    """serving_registry/tf_2_15.py is regenerated from TF 2.15.1 itself, unchanged."""
    if not TF215.exists():
        pytest.fail(
            "no .venv-tf215: run `make tf215` (make test does) — this check must not be skipped"
        )
    generator = ROOT / "dev" / "gen_op_lists.py"
    done = subprocess.run(
        [str(TF215), str(generator), "registry"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    committed = ROOT / "handlers" / "validation" / "scan" / "serving_registry" / "tf_2_15.py"
    assert done.stdout == committed.read_text(encoding="utf-8"), "regenerate tf_2_15.py"
