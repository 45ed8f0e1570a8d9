"""A model finite on zeros but NaN or infinite on the seeded random sample is registered — the
sample may leave a legitimate model's domain — and the finding is on the record and on the version
(label `validation`, description), so a user sees it before deploying.

Real TensorFlow models built here, uploaded to fake-gcs-server and delivered over HTTP to the
function (functions-framework's app) with the Vertex emulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import Bucket, Models, Vertex, deliver

STATE = "registrar-state/uploads/"


def _sqrt_saved_model(directory: Path) -> Path:
    """y = sqrt(x): 0 on zeros, NaN for the sample's negative inputs (uniform in [-1, 1])."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(tf.ones([3]), name="scale")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": tf.sqrt(x) * module.scale}

    module.serve = serve
    tf.saved_model.save(module, str(directory), signatures={"serving_default": serve})
    return directory


def _exponential_keras(path: Path) -> Path:
    """exp(1000 * sum(x)): 1 on zeros, infinite on the sample (a built-in activation: no Lambda)."""
    import keras
    import numpy as np

    inputs = keras.Input(shape=(4,), name="x", dtype="float32")
    outputs = keras.layers.Dense(1, activation="exponential", name="dense")(inputs)
    model = keras.Model(inputs, outputs)
    model.get_layer("dense").set_weights(
        [np.full((4, 1), 1000.0, "float32"), np.zeros((1,), "float32")]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def _version(vertex: Vertex, record: dict[str, Any]) -> dict[str, Any]:
    [version] = [
        v for v in vertex.versions(record["model"]) if v["versionId"] == record["version_id"]
    ]
    return version


def _assert_finding(record: dict[str, Any], vertex: Vertex, output: str) -> None:
    assert record["state"] == "registered", record
    validation = record["validation"]
    assert validation["smoke_test"] == "passed"
    [finding] = validation["findings"]
    assert finding["code"] == "smoke.sample_non_finite"
    assert finding["outputs"] == [output]
    assert "NaN/inf on the random sample" in validation["summary"]
    version = _version(vertex, record)
    assert version["labels"]["validation"] == "passed-sample-non-finite"
    description = version["versionDescription"]
    assert description.startswith("WARNING: ") and "random test sample" in description


def test_a_saved_model_nan_on_the_sample_is_registered_with_the_finding(
    function_client: Any,
    bucket: Bucket,
    vertex: Vertex,
    tmp_path: Path,
) -> None:
    local = _sqrt_saved_model(tmp_path / "sqrt")
    resources = bucket.upload_dir(local, "models/sqrt/v1/")
    assert all(deliver(function_client, r) == 200 for r in resources)
    [name] = bucket.names(f"{STATE}models/sqrt/v1/members-")
    _assert_finding(bucket.read_json(name), vertex, "y")


def test_a_keras_model_infinite_on_the_sample_is_registered_with_the_finding(
    function_client: Any, bucket: Bucket, vertex: Vertex, tmp_path: Path
) -> None:
    resource = bucket.upload(_exponential_keras(tmp_path / "exp.keras"), "models/exp.keras")
    assert deliver(function_client, resource) == 200
    record = bucket.read_json(f"{STATE}models/exp.keras/g{resource['generation']}.json")
    _assert_finding(record, vertex, _single_output(record))


def _single_output(record: dict[str, Any]) -> str:
    """The exported model's one output name, as the record's validation summary has it."""
    summary = record["validation"]["summary"]
    return summary.split("out=", 1)[1].split(":", 1)[0]


def test_a_model_finite_on_the_sample_carries_no_finding(
    function_client: Any, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(models.keras_a, "models/fine/v1/model.keras")
    assert deliver(function_client, resource) == 200
    record = bucket.read_json(f"{STATE}models/fine/v1/model.keras/g{resource['generation']}.json")
    assert record["state"] == "registered" and "findings" not in record["validation"]
    version = _version(vertex, record)
    assert version["labels"]["validation"] == "passed"
    assert not version["versionDescription"].startswith("WARNING")
