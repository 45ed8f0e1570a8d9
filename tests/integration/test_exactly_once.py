"""Exactly one version per upload under at-least-once delivery, races and injected faults.

Deliveries go through a real functions-framework server process (its worker threads give real
concurrency); a non-2xx answer is redelivered, as Pub/Sub push does, until it is acknowledged.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from handlers.gcs.records import Records
from handlers.pipeline import Pipeline
from handlers.settings import Settings
from tests.conftest import Bucket, Models, Vertex, deliver_until_acked, function_env


@pytest.fixture(scope="module")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server")


@pytest.fixture(scope="module")
def server(services, server_logs: Path) -> Iterator[str]:
    logs = server_logs
    service = stack.start_function(
        {
            **stack.function_env(services.storage_url, services.vertex_url),
            **function_env(services),
            "THREADS": "8",
        },
        log_dir=logs,
    )
    yield service.url
    service.stop()


def deliver_concurrently(url: str, resource: dict[str, Any], times: int = 3) -> list[int]:
    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(lambda _: deliver_until_acked(url, resource, "e1"), range(times)))


def test_same_event_three_times_concurrently_is_one_version(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(models.keras_a, "models/triple/v1/model.keras")
    deliver_concurrently(server, resource)
    [model] = vertex.models("triple")
    assert len(vertex.versions(model["name"])) == 1


def test_two_first_uploads_racing_make_one_model_with_two_versions(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    first = bucket.upload(models.keras_a, "models/racer/a/model.keras")
    second = bucket.upload(models.keras_b, "models/racer/b/model.keras")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda r: deliver_until_acked(server, r, r["name"]), [first, second]))
    [model] = vertex.models("racer")
    assert [v["versionId"] for v in vertex.versions(model["name"])] == ["1", "2"]


@pytest.mark.parametrize("status", [503, 429])
def test_vertex_failing_then_recovering_loses_nothing(
    server: str, bucket: Bucket, vertex: Vertex, models: Models, status: int
) -> None:
    resource = bucket.upload(models.keras_a, f"models/flaky-{status}/v1/model.keras")
    vertex.fault("UploadModel", count=1_000_000, status=status)  # until cleared below
    headers, body = binary_event(resource, "e1")
    # The in-process retries give up when their time budget is spent: the platform redelivers.
    assert requests.post(server, data=body, headers=headers, timeout=300).status_code == 503
    assert vertex.state()["calls"]["UploadModel"] >= 2  # the failure was retried in-process
    vertex.clear_faults()
    deliver_until_acked(server, resource, "e1")
    [model] = vertex.models(f"flaky-{status}")
    assert len(vertex.versions(model["name"])) == 1
    record = bucket.read_json(
        f"registrar-state/uploads/models/flaky-{status}/v1/model.keras/"
        f"g{resource['generation']}.json"
    )
    assert record["state"] == "registered" and record["attempts"] >= 2


def test_a_redelivery_request_is_a_503_and_every_log_line_is_json(
    server: str, server_logs: Path, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(models.keras_b, "models/json-logs/v1/model.keras")
    vertex.fault("UploadModel", count=1_000_000, status=503)  # outlasts the in-process retries
    headers, body = binary_event(resource, "e1")
    reply = requests.post(server, data=body, headers=headers, timeout=300)
    assert reply.status_code == 503
    vertex.clear_faults()
    assert deliver_until_acked(server, resource, "e1") >= 1
    lines = [ln for ln in (server_logs / "function.log").read_text().splitlines() if ln.strip()]
    entries = [json.loads(line) for line in lines]  # a traceback's plain lines would fail here
    failed = [e for e in entries if e.get("outcome") == "failed"]
    assert any(e["source_uri"].endswith("json-logs/v1/model.keras") for e in failed)


def test_response_lost_after_vertex_created_the_version(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(models.keras_b, "models/lost-reply/v1/model.keras")
    vertex.fault("UploadModel", count=1, status=503, when="after")
    deliver_until_acked(server, resource, "e1")
    [model] = vertex.models("lost-reply")
    assert len(vertex.versions(model["name"])) == 1


class _Killed(BaseException):
    """Stands in for the instance dying: not an Exception, so nothing on the way catches it."""


class _RecordsThatDieOnce(Records):
    died = False

    def finish(self, claim: Any, outcome: dict[str, Any]) -> dict[str, Any]:
        if outcome.get("state") == "registered" and not _RecordsThatDieOnce.died:
            _RecordsThatDieOnce.died = True
            raise _Killed
        return super().finish(claim, outcome)


def test_crash_between_version_created_and_record_written(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    settings = dataclasses.replace(Settings.from_env(function_env(services)), claim_lease_seconds=1)
    pipeline = Pipeline(settings)
    pipeline.records = _RecordsThatDieOnce(pipeline.store, settings.claim_lease_seconds)
    resource = bucket.upload(models.keras_a, "models/crashy/v1/model.keras")
    headers, body = binary_event(resource, "e1")
    attributes = {"type": headers["ce-type"], "id": headers["ce-id"]}
    with pytest.raises(_Killed):
        pipeline.handle(attributes, body)
    [model] = vertex.models("crashy")
    assert len(vertex.versions(model["name"])) == 1  # Vertex said yes; the record did not
    time.sleep(1.2)  # the dead worker's lease runs out
    outcome = pipeline.handle(attributes, body)
    assert outcome.outcome == "registered"
    assert outcome.fields["reused_existing_version"] is True
    assert len(vertex.versions(model["name"])) == 1
    assert pipeline.handle(attributes, body).outcome == "duplicate"


def test_savedmodel_members_in_random_order_some_twice(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resources = bucket.upload_dir(models.saved_model, "models/dir-model/v1/", seed=5)
    deliveries = resources + random.Random(7).sample(resources, k=len(resources) // 2)
    random.Random(8).shuffle(deliveries)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda r: deliver_until_acked(server, r, r["name"]), deliveries))
    [model] = vertex.models("dir-model")
    assert len(vertex.versions(model["name"])) == 1


def test_overwrite_before_processing_supersedes_the_old_generation(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    old = bucket.upload(models.keras_a, "models/overwritten/v1/model.keras")
    new = bucket.upload(models.keras_b, "models/overwritten/v1/model.keras")
    assert old["generation"] != new["generation"]
    deliver_until_acked(server, old, "old")
    assert vertex.models("overwritten") == []  # superseded, acknowledged, nothing registered
    deliver_until_acked(server, new, "new")
    deliver_until_acked(server, new, "new")
    [model] = vertex.models("overwritten")
    [version] = vertex.versions(model["name"])
    assert version["labels"]["source-generation"] == str(new["generation"])


def test_soak_fifty_uploads_three_deliveries_random_faults(
    server: str, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    rng = random.Random(42)
    sources = [models.keras_a, models.keras_b]
    uploads = [
        bucket.upload(sources[i % 2], f"models/soak-{i % 5}/run-{i}/model.keras") for i in range(50)
    ]

    def one_upload(resource: dict[str, Any]) -> None:
        if rng.random() < 0.10:
            vertex.fault("UploadModel", count=rng.randint(1, 5), status=rng.choice([503, 429]))
        deliver_concurrently(server, resource, times=3)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(one_upload, uploads))
    versions = vertex.all_versions()
    assert len(versions) == 50
    keys = [v["labels"]["registrar-upload-key"] for v in versions]
    assert len(set(keys)) == 50  # zero duplicates
    records = [n for n in bucket.names("registrar-state/uploads/") if n.endswith(".json")]
    states = [bucket.read_json(n)["state"] for n in records]
    assert states.count("registered") == 50 and len(states) == 50


def test_deleted_before_processing_is_acknowledged_as_superseded(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    pipeline = Pipeline(Settings.from_env(function_env(services)))
    resource = bucket.upload(models.keras_a, "models/deleted-early/v1/model.keras")
    bucket.handle.blob(resource["name"]).delete()
    headers, body = binary_event(resource, "e1")
    outcome = pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body)
    assert outcome.outcome == "superseded" and "deleted" in outcome.message
    assert vertex.models() == [] and bucket.names("registrar-state/") == []


def test_a_late_fingerprint_is_recorded_as_late_not_registered_again(
    services, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    """fingerprint.pb is not part of completeness: when it is the last file to arrive, the
    directory was already registered, and it must not make a second version."""
    import shutil

    pipeline = Pipeline(Settings.from_env(function_env(services)))
    local = tmp_path / "sm"
    shutil.copytree(models.saved_model, local)
    assert (local / "fingerprint.pb").exists(), "TensorFlow writes a fingerprint: the test needs it"
    fingerprint = (local / "fingerprint.pb").read_bytes()
    (local / "fingerprint.pb").unlink()

    def handle(resource: dict[str, Any]) -> str:
        headers, body = binary_event(resource)
        return pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body).outcome

    outcomes = [handle(r) for r in bucket.upload_dir(local, "models/late-fp/v1/", seed=3)]
    assert outcomes.count("registered") == 1
    late = bucket.upload_bytes(fingerprint, "models/late-fp/v1/fingerprint.pb")
    assert handle(late) == "late"
    assert handle(late) == "late"  # redelivered: still nothing new
    [model] = vertex.models("late-fp")
    assert len(vertex.versions(model["name"])) == 1


def test_a_late_fingerprint_of_another_save_is_a_rejected_mixed_upload(
    services, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    """A fingerprint.pb from a different save arriving after registration means the directory
    now mixes two saves: rejected as such (own record), and the registered version stays."""
    import shutil

    pipeline = Pipeline(Settings.from_env(function_env(services)))
    local = tmp_path / "sm"
    shutil.copytree(models.saved_model, local)
    (local / "fingerprint.pb").unlink()
    other = (models.saved_model_b / "fingerprint.pb").read_bytes()

    def handle(resource: dict[str, Any]) -> Any:
        headers, body = binary_event(resource)
        return pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body)

    outcomes = [handle(r).outcome for r in bucket.upload_dir(local, "models/mixed-fp/v1/", seed=4)]
    assert outcomes.count("registered") == 1
    late = bucket.upload_bytes(other, "models/mixed-fp/v1/fingerprint.pb")
    outcome = handle(late)
    assert (outcome.outcome, outcome.fields["reason"]) == (
        "rejected",
        "savedmodel.fingerprint_mismatch",
    )
    record = bucket.read_json(
        f"registrar-state/uploads/models/mixed-fp/v1/late-fingerprint-g{late['generation']}.json"
    )
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == "savedmodel.fingerprint_mismatch"
    assert record["registered_version"].endswith("@1")
    assert handle(late).outcome == "rejected"  # redelivered: the same answer, one record
    [model] = vertex.models("mixed-fp")
    assert len(vertex.versions(model["name"])) == 1
