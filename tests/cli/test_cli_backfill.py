"""`registrar backfill`: the function's pipeline over a listing; re-running registers nothing."""

from __future__ import annotations

import zipfile
from pathlib import Path

from tests.conftest import Bucket, Models, Vertex


def _truncated_weights(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".h5"):
                data = data[: len(data) // 3]  # loads statically fine, fails in the sandbox
            dst.writestr(info, data)
    return target


def _populate(bucket: Bucket, models: Models, tmp_path: Path) -> None:
    """10 valid uploads (8 .keras over two models, 2 SavedModels), 3 invalid, and some noise."""
    for i in range(4):
        bucket.upload((models.keras_a, models.keras_b)[i % 2], f"models/fraud/v{i + 1}/model.keras")
        bucket.upload((models.keras_b, models.keras_a)[i % 2], f"models/churn/v{i + 1}/model.keras")
    bucket.upload_dir(models.saved_model, "models/ranker/v1/")
    bucket.upload_dir(models.saved_model_b, "models/ranker/v2/")
    bucket.upload_bytes(b"not a zip at all", "models/broken/v1/model.keras")
    bucket.upload(
        _truncated_weights(models.keras_a, tmp_path / "t.keras"), "models/broken/v2/model.keras"
    )
    bucket.upload_bytes(b"PK\x05\x06" + b"\0" * 18, "models/broken/v3/model.keras")  # empty zip
    bucket.upload_bytes(b"# notes", "models/fraud/README.md")
    bucket.upload_bytes(b"x", "models/orphan/v1/variables/variables.index")  # no saved_model.pb
    bucket.upload_bytes(b"x", "elsewhere/model.keras")  # outside MODEL_PREFIX


def test_backfill_registers_valid_rejects_invalid_and_a_rerun_adds_nothing(
    registrar, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    _populate(bucket, models, tmp_path)

    first = registrar("backfill", f"gs://{bucket.name}/models/", "--json", "--concurrency", "3")
    assert first.code == 1, first.err  # 1: rejected uploads were found
    report = first.json
    assert report["summary"]["registered"] == 10
    assert report["summary"]["rejected"] == 3
    assert report["summary"]["already registered"] == 0
    rejected = {
        r["uri"].rsplit("/", 2)[-2]: r for r in report["results"] if r["category"] == "rejected"
    }
    assert set(rejected) == {"v1", "v2", "v3"}
    assert all(r["reason"] and r["message"] for r in rejected.values())
    skipped = {r["uri"]: r["reason"] for r in report["results"] if r["category"] == "skipped"}
    assert skipped == {
        f"gs://{bucket.name}/models/fraud/README.md": "not_a_model",
        f"gs://{bucket.name}/models/orphan/v1/": "incomplete_saved_model",
    }
    assert len(vertex.all_versions()) == 10

    # Versions of one model follow upload order, so `default` ends on the newest upload.
    [fraud] = vertex.models("fraud")
    versions = vertex.versions(fraud["name"])
    assert [v["labels"]["source-version"] for v in versions] == ["v1", "v2", "v3", "v4"]
    assert "default" in versions[-1]["versionAliases"]
    [ranker] = vertex.models("ranker")
    assert [v["labels"]["source-kind"] for v in vertex.versions(ranker["name"])] == [
        "saved-model",
        "saved-model",
    ]
    record = bucket.read_json(
        "registrar-state/uploads/models/broken/v2/model.keras/"
        f"g{bucket.resource('models/broken/v2/model.keras')['generation']}"
        ".json"
    )
    assert record["state"] == "rejected"

    second = registrar("backfill", f"gs://{bucket.name}/models/")
    assert second.code == 1
    assert len(vertex.all_versions()) == 10  # nothing new
    assert "0 registered" in second.out and "10 already registered" in second.out
    assert "3 rejected" in second.out
    assert "rejected earlier" in second.out  # reasons are shown again from the records


def test_dry_run_writes_nothing_then_reports_what_is_done(
    registrar, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    bucket.upload_dir(models.saved_model_b, "models/ranker/v1/")
    bucket.upload_bytes(b"x", "models/notes.txt")
    dry = registrar("backfill", f"gs://{bucket.name}/models/", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json["summary"]["would register"] == 2
    assert dry.json["summary"]["skipped"] == 1
    assert vertex.models() == [] and bucket.names("registrar-state/") == []
    assert bucket.names("registered/") == []

    assert registrar("backfill", f"gs://{bucket.name}/models/churn/").code == 0
    again = registrar("backfill", f"gs://{bucket.name}/models/", "--dry-run", "--json")
    by_uri = {r["uri"]: r["category"] for r in again.json["results"]}
    assert by_uri[f"gs://{bucket.name}/models/churn/v1/model.keras"] == "already registered"
    assert by_uri[f"gs://{bucket.name}/models/ranker/v1/"] == "would register"
    assert len(vertex.all_versions()) == 1


def test_env_vars_drive_options(
    registrar, bucket: Bucket, vertex: Vertex, models: Models, monkeypatch
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    monkeypatch.setenv("REGISTRAR_DRY_RUN", "true")
    monkeypatch.setenv("REGISTRAR_JSON", "1")
    run = registrar("backfill", f"gs://{bucket.name}/models/")
    assert run.code == 0 and run.json["dry_run"] is True
    assert vertex.models() == []
    monkeypatch.setenv("REGISTRAR_CONCURRENCY", "0")
    assert registrar("backfill", f"gs://{bucket.name}/models/").code == 2


def test_usage_errors_and_missing_bucket(registrar, bucket: Bucket, vertex: Vertex) -> None:
    outside = registrar("backfill", f"gs://{bucket.name}/elsewhere/")
    assert outside.code == 2 and "MODEL_PREFIX" in outside.err
    assert registrar("backfill", "/local/path").code == 2
    assert registrar("backfill").code == 2
    assert registrar().code == 2
    missing = registrar("backfill", "gs://no-such-bucket-here/models/")
    assert missing.code == 3, missing.err


def test_transient_registry_failure_exits_4_and_a_rerun_finishes(
    registrar, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    vertex.fault("UploadModel", count=3, status=503)  # every attempt of the one upload fails
    failed = registrar("backfill", f"gs://{bucket.name}/models/", "--json")
    assert failed.code == 4, failed.err
    [result] = failed.json["results"]
    assert result["category"] == "failed" and "UploadModel" in result["message"]
    assert vertex.models() == []
    status = registrar("status", f"gs://{bucket.name}/models/churn/v1/model.keras", "--json")
    assert status.json["latest"]["state"] == "retrying"

    again = registrar("backfill", f"gs://{bucket.name}/models/")
    assert again.code == 0, again.out + again.err
    assert "1 registered" in again.out
    assert len(vertex.all_versions()) == 1
