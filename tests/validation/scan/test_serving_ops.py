"""Whether the serving TensorFlow's op registry admits a graph (static check, function process);
which TensorFlow an image runs and its lifecycle: tests/test_serving_images.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from handlers import serving_images
from handlers.errors import PermanentError, Rejected, SettingsError
from handlers.settings import Settings
from handlers.validation.scan import serving_ops
from handlers.validation.scan.graph import GraphIndex
from handlers.validation.scan.savedmodel import _parse, scan_saved_model_dir
from tests.conftest import make_settings
from tests.validation.scan import savedmodels as sm

PREBUILT = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def test_every_registry_file_is_declared():
    """serving_images.REGISTRIES (what settings accept) is exactly the generated files."""
    assert serving_ops.available_versions() == list(serving_images.REGISTRIES)


def test_validation_with_unusable_serving_settings_is_a_permanent_error(tmp_path):
    model = sm.with_variable(tmp_path / "m")
    settings = make_settings(serving_image="us-docker.pkg.dev/p/r/custom:1")
    with pytest.raises(PermanentError) as info:
        scan_saved_model_dir(model, settings)
    assert info.value.code == "settings.serving_tf_version"
    assert not isinstance(info.value, Rejected)


# ---- the registry check, on real TF 2.21 SavedModels --------------------------------------------


def _scan(model: Path, version: str = "2.15") -> None:
    settings = make_settings(serving_image=PREBUILT.replace("2-15", version.replace(".", "-")))
    scan_saved_model_dir(model, settings)


def test_matmul_with_an_attribute_new_in_2_16_is_incompatible(tmp_path):
    tf = pytest.importorskip("tensorflow")
    w = tf.ones([4, 2])
    model = sm.save_serving(tmp_path / "m", lambda x: tf.raw_ops.MatMul(a=x, b=w, grad_a=True))
    with pytest.raises(Rejected) as info:
        _scan(model)
    assert info.value.code == "savedmodel.serving_incompatible"
    assert "MatMul attribute 'grad_a' does not exist in TF 2.15.1, which ignores it" in str(
        info.value
    )
    _scan(model, "2.21")  # the same graph is fine for a 2.21 server


def test_op_new_in_2_16_is_incompatible(tmp_path):
    tf = pytest.importorskip("tensorflow")

    def body(x):
        image = tf.raw_ops.DecodeWebP(contents=tf.constant(b""), channels=3)
        return x + tf.cast(tf.reduce_sum(image), tf.float32)

    model = sm.save_serving(tmp_path / "m", body)
    with pytest.raises(Rejected) as info:
        _scan(model)
    assert info.value.code == "savedmodel.serving_incompatible"
    assert "op DecodeWebP does not exist in TF 2.15.1 (the load fails)" in str(info.value)


def test_dtype_and_graph_version_checks(tmp_path):
    model = sm.with_variable(tmp_path / "m")
    meta = _parse(model / "saved_model.pb")
    meta.graph_def.versions.min_consumer = 10**6
    functions = meta.graph_def.library.function
    node = next(n for f in functions for n in f.node_def if n.op == "MatMul")
    dtype = next(a for a in node.attr if a.key == "T")
    dtype.value.type = 31  # a DataType 2.21 knows and 2.15 does not
    with pytest.raises(Rejected) as info:
        serving_ops.check_serving_compat(GraphIndex(meta), "2.15")
    assert "GraphDef needs consumer version 1000000" in str(info.value)
    assert "MatMul.T: dtype 31 unknown to TF 2.15.1" in str(info.value)


def test_cost_of_the_graph_checks_on_a_typical_graph(tmp_path):
    """Measured: the whole graph check (index, allowlist, saver, registry) of a Keras CNN
    export, a few milliseconds."""
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    from handlers.validation.sandbox import tf_ops
    from handlers.validation.scan.graph_checks import check_graph

    x = keras.Input((32, 32, 3), name="img")
    h = keras.layers.Conv2D(8, 3, activation="relu")(x)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.MaxPooling2D()(h))
    model = keras.Model(x, keras.layers.Dense(10, activation="softmax")(h))
    tf_ops._export_keras(model, str(tmp_path / "export"))
    meta = _parse(tmp_path / "export" / "saved_model.pb")
    settings = make_settings()
    check_graph(tmp_path / "export", meta, settings)  # warm: registry parsed once per process
    started = time.perf_counter()
    for _ in range(10):
        check_graph(tmp_path / "export", meta, settings)
    per_check = (time.perf_counter() - started) / 10
    nodes = len(meta.graph_def.node) + sum(len(f.node_def) for f in meta.graph_def.library.function)
    print(f"graph checks: {per_check * 1000:.2f} ms for {nodes} nodes")
    assert per_check < 0.05
    del tf


def test_settings_check_the_serving_version_at_start_up():
    project = {"GOOGLE_CLOUD_PROJECT": "my-project"}
    assert Settings.from_env(project).serving_tf_version is None  # read from the default image
    custom = {**project, "SERVING_CONTAINER_IMAGE_URI": "us-docker.pkg.dev/p/r/serving:1"}
    with pytest.raises(SettingsError, match="Set SERVING_TF_VERSION"):
        Settings.from_env(custom)
    assert Settings.from_env({**custom, "SERVING_TF_VERSION": "2.14"}).serving_tf_version == "2.14"
    with pytest.raises(SettingsError, match="contradicts"):
        Settings.from_env({**project, "SERVING_TF_VERSION": "2.13"})
