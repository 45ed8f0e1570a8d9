"""Upload -> validated -> registered version, end to end over HTTP against the emulators."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from dev import stack
from tests.conftest import ROOT, Bucket, Models, Vertex, deliver, function_env


def _labels(version: dict) -> dict:
    return version.get("labels", {})


def test_keras_upload_registers_one_version_with_lineage(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(
        models.keras_a,
        "models/fraud-detector/2026-11-26/model.keras",
        metadata={"description": "weekly retrain", "aliases": "candidate"},
    )
    assert deliver(function_client, resource) == 200

    [model] = vertex.models("fraud-detector")
    [version] = vertex.versions(model["name"])
    assert version["versionId"] == "1"
    assert set(version["versionAliases"]) == {"default", "candidate"}
    assert version["description"].startswith("weekly retrain")
    assert (
        f"gs://{bucket.name}/models/fraud-detector/2026-11-26/model.keras"
        in (version["description"])
    )
    labels = _labels(version)
    assert labels["source-generation"] == str(resource["generation"])
    assert labels["managed-by"] == "gcs-model-registrar"
    assert len(labels["content-sha256"]) == 40
    # Registered from an immutable, content-addressed copy holding a SavedModel, not the upload.
    artifact = version["artifactUri"]
    # ... in the layout of the default image, TF Serving: <artifact_uri>/1/saved_model.pb
    assert artifact.startswith(f"gs://{bucket.name}/registered/fraud-detector/tfs-sha256-")
    base = artifact.split("/", 3)[3]
    copied = bucket.names(base)
    assert f"{base}1/saved_model.pb" in copied and f"{base}1/model.keras" in copied
    assert all(n.startswith(f"{base}1/") for n in copied), copied
    # ... served as a Vertex custom container: TF Serving's command, port and routes
    spec = version["containerSpec"]
    assert spec["imageUri"].endswith("/tensorflow-serving/tensorflow/serving:2.20.0")
    assert spec["imageUri"].startswith("us-central1-docker.pkg.dev/")
    assert "--model_base_path=$(AIP_STORAGE_URI)" in spec["args"]
    assert f"--model_name={model['name'].rsplit('/', 1)[-1]}" in spec["args"]
    assert [int(p["containerPort"]) for p in spec["ports"]] == [8501]
    assert spec["predictRoute"] == "/v1/models/fraud-detector:predict"
    assert spec["healthRoute"] == "/v1/models/fraud-detector"
    record = bucket.read_json(
        "registrar-state/uploads/models/fraud-detector/2026-11-26/"
        f"model.keras/g{resource['generation']}.json"
    )
    assert record["state"] == "registered" and record["version_id"] == "1"
    assert record["model"] == model["name"]


def test_second_upload_of_the_same_name_is_version_two(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    first = bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    second = bucket.upload(models.keras_b, "models/churn/v2/model.keras")
    assert deliver(function_client, first) == 200
    assert deliver(function_client, second) == 200
    [model] = vertex.models("churn")
    versions = vertex.versions(model["name"])
    assert [v["versionId"] for v in versions] == ["1", "2"]
    assert "default" in versions[1]["versionAliases"]
    assert "default" not in versions[0]["versionAliases"]
    assert model["name"].endswith("/models/churn")  # deterministic model id from the name


def test_savedmodel_directory_in_random_order_registers_once(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resources = bucket.upload_dir(models.saved_model, "models/ranker/v7/", seed=11)
    statuses = [deliver(function_client, r) for r in resources]
    assert statuses == [200] * len(resources)
    [model] = vertex.models("ranker")
    [version] = vertex.versions(model["name"])
    assert _labels(version)["source-kind"] == "saved-model"
    assert _labels(version)["source-version"] == "v7"
    artifact_files = bucket.names(version["artifactUri"].split("/", 3)[3])
    assert sum("variables.data-" in n for n in artifact_files) == 2


def test_unrelated_and_malformed_events_are_acknowledged_and_register_nothing(
    function_client, bucket: Bucket, vertex: Vertex
) -> None:
    for name in (
        "logs/app.log",
        "models/x/README.md",
        "models/x/metrics.json",
        "models/x/",
        "models/x/model.h5",
    ):
        assert deliver(function_client, bucket.upload_bytes(b"hello", name)) == 200
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/b",
        "ce-type": "google.cloud.storage.object.v1.finalized",
    }
    assert function_client.post("/", data=b"{not json", headers=headers).status_code == 200
    assert (
        function_client.post(
            "/", data=json.dumps({"name": "models/a.keras"}), headers=headers
        ).status_code
        == 200
    )
    other = {**headers, "ce-type": "google.cloud.storage.object.v1.deleted"}
    assert function_client.post("/", data=b"{}", headers=other).status_code == 200
    assert vertex.models() == []


def test_model_that_fails_to_load_is_rejected_and_recorded(
    function_client, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.keras"
    with zipfile.ZipFile(models.keras_a) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".h5"):
                data = data[: len(data) // 3]  # weights cut short: loading must fail
            dst.writestr(info, data)
    resource = bucket.upload(broken, "models/broken/v1/model.keras")
    assert deliver(function_client, resource) == 200
    assert vertex.models() == []
    record = bucket.read_json(
        f"registrar-state/uploads/models/broken/v1/model.keras/g{resource['generation']}.json"
    )
    assert record["state"] == "rejected"
    assert record["reason"]["code"] and record["reason"]["message"]
    assert not bucket.names("registered/")


def test_import_main_pulls_in_neither_tensorflow_nor_the_vertex_sdk() -> None:
    code = (
        "import sys, main; heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith('google.cloud.aiplatform')]; print(heavy)"
    )
    env = {"GOOGLE_CLOUD_PROJECT": "test-project", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_bad_settings_stop_the_server_at_start_naming_the_variable(services) -> None:
    env = {**function_env(services), "DEFAULT_VERSION_POLICY": "sometimes", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", "import main"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1  # an uncaught SettingsError at import: the server never starts
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        "handlers.errors.SettingsError: DEFAULT_VERSION_POLICY='sometimes': "
        "expected one of new, keep."
    )


@pytest.mark.slow
def test_real_functions_framework_server_process(
    services, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    server = stack.start_function(
        {**function_env(services), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, log_dir=tmp_path
    )
    try:
        resource = bucket.upload(models.keras_b, "models/served/v1/model.keras")
        from dev.bridge import binary_event

        headers, body = binary_event(resource)
        assert requests.post(server.url, data=body, headers=headers, timeout=300).status_code == 200
        unrelated = bucket.upload_bytes(b"x", "other/file.txt")
        headers, body = binary_event(unrelated)
        assert requests.post(server.url, data=body, headers=headers, timeout=30).status_code == 200
    finally:
        server.stop()
    [model] = vertex.models("served")
    assert len(vertex.versions(model["name"])) == 1
    log_lines = [
        json.loads(line)
        for line in (tmp_path / "function.log").read_text().splitlines()
        if line.startswith("{")
    ]
    assert any(
        entry.get("outcome") == "registered" and entry.get("severity") == "INFO"
        for entry in log_lines
    )


def test_savedmodel_waits_for_the_assets_its_graph_reads(
    function_client, bucket: Bucket, vertex: Vertex, tmp_path: Path
) -> None:
    from tests.modelfactory import build_saved_model_with_asset

    local = build_saved_model_with_asset(tmp_path / "vocab_model")
    files = sorted(p for p in local.rglob("*") if p.is_file() and p.parent.name != "assets")
    for path in files:  # everything but the vocabulary: complete by file names, not by the graph
        resource = bucket.upload(path, f"models/tagger/v1/{path.relative_to(local).as_posix()}")
        assert deliver(function_client, resource) == 200
    assert vertex.models("tagger") == []
    asset = bucket.upload(local / "assets" / "vocab.txt", "models/tagger/v1/assets/vocab.txt")
    assert deliver(function_client, asset) == 200
    [model] = vertex.models("tagger")
    [version] = vertex.versions(model["name"])
    assert any(
        n.endswith("/assets/vocab.txt")
        for n in bucket.names(version["artifactUri"].split("/", 3)[3])
    )
