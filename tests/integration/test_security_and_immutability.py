"""Hostile uploads through the whole function (HTTP, emulators): each one is a recorded rejection
with its own reason, 2xx, nothing registered, no payload code run; and registered versions point
at immutable copies that survive the upload being overwritten or deleted."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from tests.conftest import Bucket, Models, Vertex, deliver
from tests.validation import corpus


def _record(bucket: Bucket, name: str, resource: dict) -> dict:
    return bucket.read_json(f"registrar-state/uploads/{name}/g{resource['generation']}.json")


def _base_config(models: Models) -> dict:
    return json.loads(corpus.read_member(models.keras_a, "config.json"))


@pytest.mark.parametrize(
    ("builder", "code"),
    [
        ("lambda", "keras.lambda_layer"),
        ("zip_slip", "keras.path_traversal"),
        ("renamed_h5", "keras.legacy_h5"),
        ("random_bytes", "keras.not_a_zip"),
    ],
)
def test_hostile_keras_is_rejected_over_http(
    function_client,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
    tmp_path: Path,
    builder: str,
    code: str,
) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "m.keras"
    if builder == "lambda":
        corpus.write_keras(
            path, corpus.with_layer(_base_config(models), corpus.lambda_layer(sentinel))
        )
    elif builder == "zip_slip":
        corpus.write_keras(path, _base_config(models), extra={"../../evil.txt": b"x"})
    elif builder == "renamed_h5":
        corpus.legacy_h5(path)
    else:
        path.write_bytes(os.urandom(4096))
    name = f"models/hostile-{builder}/v1/model.keras"
    resource = bucket.upload(path, name)
    assert deliver(function_client, resource) == 200
    assert deliver(function_client, resource) == 200  # redelivery: recorded once, still 2xx
    record = _record(bucket, name, resource)
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == code
    assert [h["state"] for h in record["history"]] == ["claimed", "rejected"]
    assert vertex.models() == []
    assert not sentinel.exists()
    assert bucket.names("registered/") == []


def test_keras_upload_is_registered_as_an_immutable_servable_savedmodel(
    function_client, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    import numpy as np
    import tensorflow as tf

    name = "models/immutable/v1/model.keras"
    resource = bucket.upload(models.keras_a, name)
    assert deliver(function_client, resource) == 200
    [model] = vertex.models("immutable")
    [version] = vertex.versions(model["name"])
    prefix = version["artifactUri"].split("/", 3)[3]
    before = {b.name: b.md5_hash for b in bucket.client.list_blobs(bucket.name, prefix=prefix)}

    # Overwrite the upload, then delete it: the registered version must not notice.
    overwritten = bucket.upload(models.keras_b, name)
    bucket.handle.blob(name).delete()
    after = {b.name: b.md5_hash for b in bucket.client.list_blobs(bucket.name, prefix=prefix)}
    assert after == before
    [still] = vertex.versions(model["name"])
    assert still["artifactUri"] == version["artifactUri"]
    assert overwritten["generation"] != resource["generation"]

    # What is registered is a SavedModel that loads and serves, and matches the Keras model.
    local = tmp_path / "artifact"
    for object_name in before:
        target = local / object_name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        bucket.handle.blob(object_name).download_to_filename(str(target))
    # TF Serving's layout (the default serving image): <artifact_uri>/1/saved_model.pb
    assert sorted({p.name for p in local.iterdir()}) == ["1"]
    local = local / "1"
    manifest = json.loads((local / "registrar-manifest.json").read_text())
    assert "saved_model.pb" in manifest["files"] and "model.keras" in manifest["files"]
    served = tf.saved_model.load(str(local))
    x = np.ones((2, 4), "float32")
    outputs = served.signatures["serving_default"](x=tf.constant(x))
    import keras

    expected = keras.saving.load_model(models.keras_a, compile=False)(x)
    np.testing.assert_allclose(next(iter(outputs.values())).numpy(), expected, rtol=1e-5)
    with zipfile.ZipFile(local / "model.keras") as kept:  # the original is kept beside it
        assert "config.json" in kept.namelist()
