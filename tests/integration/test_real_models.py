"""A few real models of the corpus (tests/validation/test_corpus.py) through the function over
HTTP: keras.applications' ConvNeXt (Keras' own internal layers), a Keras 2 SavedModel with an
adapted TextVectorization from TF 2.15.1 (its unserved adapt_step reads an iterator), and a Keras 2
`.keras` file, refused first with its own code and the conversion that works."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, Bucket, Vertex, deliver
from tests.validation import corpus

TF215 = ROOT / ".venv-tf215" / "bin" / "python"
BUILD_KERAS2 = ROOT / "tests" / "validation" / "tf215" / "build_keras2.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not TF215.exists():
        pytest.fail("no .venv-tf215: run `make tf215` (make test does) — this must not be skipped")
    out = tmp_path_factory.mktemp("keras2")
    done = subprocess.run(
        [str(TF215), str(BUILD_KERAS2), str(out), "k2_text_savedmodel", "keras2_functional.keras"],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: Path(v["path"]) for k, v in json.loads(done.stdout).items()}


def test_convnext_from_keras_applications_registers(
    function_client, bucket: Bucket, vertex: Vertex, tmp_path: Path
) -> None:
    path = corpus.build_application("ConvNeXtTiny", tmp_path / "convnext.keras")
    resource = bucket.upload(path, "models/convnext-tiny/v1/model.keras")
    assert deliver(function_client, resource) == 200
    assert bucket.record(resource)["state"] == "registered", bucket.record(resource)
    [model] = vertex.models("convnext-tiny")
    assert len(vertex.versions(model["name"])) == 1


def test_keras2_text_savedmodel_from_tf215_registers(
    function_client, bucket: Bucket, vertex: Vertex, keras2: dict[str, Path]
) -> None:
    resources = bucket.upload_dir(keras2["k2_text_savedmodel"], "models/k2-text/v1/")
    assert [deliver(function_client, r) for r in resources] == [200] * len(resources)
    [model] = vertex.models("k2-text")
    [version] = vertex.versions(model["name"])
    assert version["labels"]["source-kind"] == "saved-model"


def test_keras2_keras_file_is_refused_with_its_code_and_the_conversion(
    function_client, bucket: Bucket, vertex: Vertex, keras2: dict[str, Path]
) -> None:
    resource = bucket.upload(keras2["keras2_functional.keras"], "models/k2-file/v1/model.keras")
    assert deliver(function_client, resource) == 200
    record = bucket.record(resource)
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == "keras.keras2_format"
    assert ".export('model_savedmodel')" in record["reason"]["message"]
    assert "allowlist" not in record["reason"]["message"].lower()
    assert vertex.models("k2-file") == []
