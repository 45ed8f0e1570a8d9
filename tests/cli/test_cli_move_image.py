"""`registrar move-image` end to end on the emulators: versions registered with Vertex's prebuilt
2.15 image move to the default TF Serving image as new versions of the same models - the verified
artifact copied into TF Serving's numbered layout, lineage labels, aliases only when asked - once
(a second run does nothing), paced under the upload quota, over one version, a model, or all."""

from __future__ import annotations

import contextlib
import io
import sys

import pytest

from handlers.cli import backfill as backfill_lib
from handlers.cli.app import main
from handlers.cli.move import IMAGE_LABEL, MOVED_FROM_LABEL, image_label
from tests.cli.test_cli_backfill import FakeTime
from tests.conftest import Bucket, Services, Vertex, function_env

PREBUILT = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def _labels(version: dict) -> dict[str, str]:
    return version.get("labels", {})


@pytest.fixture
def legacy(services: Services, models, monkeypatch: pytest.MonkeyPatch) -> tuple[Bucket, Vertex]:
    """Two models on the prebuilt 2.15 image: churn v1, v2 (v2 default, v1 `stable`), fraud v1."""
    vertex = Vertex(services.vertex_url)
    vertex.reset()
    bucket = Bucket(services.storage_url, "cli-move")
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    bucket.upload(models.keras_b, "models/churn/v2/model.keras")
    bucket.upload(models.keras_a, "models/fraud/v1/model.keras", metadata={"aliases": "stable"})
    with monkeypatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        for key, value in function_env(services, SERVING_CONTAINER_IMAGE_URI=PREBUILT).items():
            patch.setenv(key, value)
        assert main(["backfill", f"gs://{bucket.name}/models/", "--json"]) == 0, sys.stdout
    assert {v["containerSpec"]["imageUri"] for v in vertex.all_versions()} == {PREBUILT}
    return bucket, vertex


def test_move_one_version_then_a_model_then_all_once(registrar, legacy) -> None:
    bucket, vertex = legacy
    [churn] = vertex.models("churn")
    run = registrar("move-image", "churn@1", "--json")
    assert run.code == 0, run.err
    doc = run.json
    assert doc["uploads"] == 1 and [m["state"] for m in doc["moves"]] == ["moved"]
    image = doc["serving_image"]
    assert image.endswith("/tensorflow-serving/tensorflow/serving:2.20.0")
    assert "[1/1]" in run.err  # progress, on stderr in --json mode

    versions = vertex.versions(churn["name"])
    assert [v["versionId"] for v in versions] == ["1", "2", "3"]
    original, _, moved = versions
    # a new version of the same model: the new image with TF Serving's spec, the same bytes in
    # the numbered layout, lineage to the original, no alias taken from anyone
    spec = moved["containerSpec"]
    assert spec["imageUri"] == image
    assert "--model_base_path=$(AIP_STORAGE_URI)" in spec["args"]
    assert spec["predictRoute"] == "/v1/models/churn:predict"
    assert _labels(moved)[MOVED_FROM_LABEL] == "1"
    assert _labels(moved)[IMAGE_LABEL] == image_label(image)
    for key in ("content-sha256", "registrar-upload-key", "source-generation"):
        assert _labels(moved)[key] == _labels(original)[key]
    assert "Moved from version 1" in moved["versionDescription"]
    base = moved["artifactUri"].split("/", 3)[3]
    assert base.rstrip("/").rsplit("/", 1)[-1].startswith("tfs-sha256-")
    old = original["artifactUri"].split("/", 3)[3]
    assert sorted(n[len(base) + 2 :] for n in bucket.names(base)) == sorted(
        n[len(old) :] for n in bucket.names(old)
    )
    assert "default" not in moved.get("versionAliases", [])
    assert original["containerSpec"]["imageUri"] == PREBUILT  # the original is untouched
    assert registrar("verify", "churn@3").code == 0  # re-hashed against the original's record

    again = registrar("move-image", "churn@1", "--json").json
    assert again["uploads"] == 0 and again["moves"][0]["state"] == "already-moved"
    assert again["moves"][0]["new_version"].endswith("@3")

    whole = registrar("move-image", "churn", "--move-aliases", "--json").json
    states = {m["version"].rsplit("@", 1)[-1]: m["state"] for m in whole["moves"]}
    assert states == {"1": "already-moved", "2": "moved"}  # v3 is a move: never moved again
    versions = vertex.versions(churn["name"])
    assert len(versions) == 4
    assert "default" in versions[3]["versionAliases"]  # v2's default moved to its move, v4
    assert "default" not in versions[1].get("versionAliases", [])

    everything = registrar("move-image", "--all", "--move-aliases", "--json").json
    states = {m["version"].split("/models/")[-1]: m["state"] for m in everything["moves"]}
    assert states == {"churn@1": "already-moved", "churn@2": "already-moved", "fraud@1": "moved"}
    assert everything["uploads"] == 1
    [fraud] = vertex.models("fraud")
    fraud_versions = vertex.versions(fraud["name"])
    assert [v["versionId"] for v in fraud_versions] == ["1", "2"]
    assert {"default", "stable"} <= set(fraud_versions[1]["versionAliases"])
    final = registrar("move-image", "--all", "--json").json
    assert final["uploads"] == 0 and len(vertex.all_versions()) == 6

    deployed = registrar("deploy", "churn@4", "--endpoint", "moved-ep", "--json")
    assert deployed.code == 0, deployed.err  # record found, artifact verified, image fine


def test_moves_are_paced_under_the_upload_quota(registrar, legacy, monkeypatch) -> None:
    fake = FakeTime()
    monkeypatch.setattr(backfill_lib, "TIMER", fake.timer())
    run = registrar("move-image", "--all", "--uploads-per-minute", "2", "--json")
    assert run.code == 0, run.err
    assert run.json["uploads"] == 3
    assert sum(fake.slept) >= 59.0  # the third upload waited for the first's minute to pass


def test_refuses_a_target_image_past_its_end_of_availability(registrar, legacy) -> None:
    old = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-13:latest"
    run = registrar("move-image", "--all", "--serving-image", old)
    assert run.code == 1 and "2025-11-28" in " ".join(run.err.split())
    assert registrar("move-image", "churn@1", "--all").code == 2  # one or the other
