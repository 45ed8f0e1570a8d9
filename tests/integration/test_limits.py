"""Limits and naming problems are recorded rejections, decided before anything is downloaded."""

from __future__ import annotations

import dataclasses

import pytest

from dev.bridge import binary_event
from handlers.pipeline import Pipeline
from handlers.settings import Settings
from tests.conftest import Bucket, Models, Vertex, function_env


def _pipeline(services, **changes) -> Pipeline:
    return Pipeline(dataclasses.replace(Settings.from_env(function_env(services)), **changes))


def _handle(pipeline: Pipeline, resource: dict):
    headers, body = binary_event(resource)
    return pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body)


def test_upload_over_max_artifact_bytes_is_recorded_and_not_downloaded(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    pipeline = _pipeline(services, max_artifact_bytes=1024)
    resource = bucket.upload(models.keras_a, "models/huge/v1/model.keras")
    outcome = _handle(pipeline, resource)
    assert outcome.outcome == "rejected" and outcome.fields["reason"] == "too_large"
    assert "download" not in outcome.fields["timings"]
    record = bucket.read_json(
        f"registrar-state/uploads/models/huge/v1/model.keras/g{resource['generation']}.json"
    )
    assert (
        record["reason"]["code"] == "too_large"
        and "MAX_ARTIFACT_BYTES" in (record["reason"]["message"])
    )
    assert vertex.models() == []


def test_display_name_vertex_would_refuse_is_a_recorded_rejection(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    name = "x" * 129
    resource = bucket.upload(models.keras_a, f"models/{name}/v1/model.keras")
    outcome = _handle(_pipeline(services), resource)
    assert outcome.outcome == "rejected" and outcome.fields["reason"] == "bad_display_name"
    assert vertex.models() == []


def test_invalid_alias_metadata_is_a_recorded_rejection(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(
        models.keras_a, "models/aliased/v1/model.keras", metadata={"aliases": "Prod_1"}
    )
    outcome = _handle(_pipeline(services), resource)
    assert outcome.outcome == "rejected" and outcome.fields["reason"] == "bad_alias"
    assert "Prod_1" in outcome.message
    assert "download" not in outcome.fields["timings"]  # refused before any work
    assert vertex.models() == [] and bucket.names("registered/") == []


def test_permission_denied_is_redelivered_and_recovers_once_iam_is_fixed(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """A real 403 from the storage API (injected by a proxy in front of fake-gcs-server): right
    after a deploy IAM is still propagating, so the upload must not be recorded as rejected."""
    from dev.gcs_faults import FaultProxy
    from handlers.errors import PermissionDenied

    proxy = FaultProxy(services.storage_url).start()
    try:
        settings = Settings.from_env(function_env(services, STORAGE_EMULATOR_HOST=proxy.url))
        pipeline = Pipeline(settings)
        resource = bucket.upload(models.keras_a, "models/forbidden/v1/model.keras")
        proxy.fail(method="POST", path_contains="registrar-state", status=403, times=1)
        with pytest.raises(PermissionDenied) as caught:  # main.py answers 5xx: redelivered
            _handle(pipeline, resource)
        assert proxy.refused, "the injected 403 must have been hit"
        assert caught.value.permission == "storage.objects.create"
        assert caught.value.resource.startswith(f"gs://{bucket.name}/registrar-state/")
        assert vertex.models() == [] and bucket.names("registrar-state/") == []
        outcome = _handle(pipeline, resource)  # the redelivery, after "IAM was fixed"
        assert outcome.outcome == "registered"
    finally:
        proxy.stop()


PREBUILT = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def test_every_registration_warns_when_the_serving_image_ends_within_60_days(
    services, bucket: Bucket, vertex: Vertex, models: Models, caplog, monkeypatch
) -> None:
    import datetime
    import logging

    from handlers import serving_images

    monkeypatch.setattr(serving_images, "today_utc", lambda: datetime.date(2026, 12, 7))
    pipeline = _pipeline(services, serving_image=PREBUILT)
    resource = bucket.upload(models.keras_a, "models/eol-warning/v1/model.keras")
    with caplog.at_level(logging.WARNING, logger="handlers.pipeline"):
        assert _handle(pipeline, resource).outcome == "registered"
    (warning,) = [r for r in caplog.records if "end of availability" in r.getMessage()]
    assert warning.json_fields["days_left"] == 38
    assert warning.json_fields["end_of_availability"] == "2027-01-14"
    assert "SERVING_CONTAINER_IMAGE_URI=" in warning.getMessage()
    [version] = vertex.versions(vertex.models("eol-warning")[0]["name"])
    assert not version["artifactUri"].rstrip("/").rsplit("/", 1)[-1].startswith("tfs-")
    assert bucket.names(version["artifactUri"].split("/", 3)[3] + "saved_model.pb")  # flat

    monkeypatch.setattr(serving_images, "today_utc", lambda: datetime.date(2026, 11, 14))
    caplog.clear()
    resource = bucket.upload(models.keras_b, "models/eol-warning/v2/model.keras")
    with caplog.at_level(logging.WARNING, logger="handlers.pipeline"):
        assert _handle(pipeline, resource).outcome == "registered"
    assert not [r for r in caplog.records if "end of availability" in r.getMessage()]  # 61 days


def test_an_image_past_its_end_of_availability_is_refused_with_a_record(
    services, bucket: Bucket, vertex: Vertex, models: Models, monkeypatch
) -> None:
    import datetime

    from handlers import serving_images

    monkeypatch.setattr(serving_images, "today_utc", lambda: datetime.date(2027, 1, 15))
    pipeline = _pipeline(services, serving_image=PREBUILT)
    resource = bucket.upload(models.keras_a, "models/eol-refused/v1/model.keras")
    outcome = _handle(pipeline, resource)
    assert outcome.outcome == "rejected"
    assert outcome.fields["reason"] == "serving_image.end_of_availability"
    assert "download" not in outcome.fields["timings"]  # refused before any work
    record = bucket.read_json(
        f"registrar-state/uploads/models/eol-refused/v1/model.keras/g{resource['generation']}.json"
    )
    assert record["state"] == "rejected"
    message = record["reason"]["message"]
    assert "2027-01-14" in message
    expected = serving_images.default_image(pipeline.settings.project, "us-central1")
    assert f"SERVING_CONTAINER_IMAGE_URI={expected}" in message
    assert vertex.models("eol-refused") == []


def test_no_warning_for_an_image_without_a_known_end(services, bucket, vertex, models, caplog):
    import logging

    pipeline = _pipeline(
        services,
        serving_image="us-docker.pkg.dev/my-project/serving/tf-serving:2.15",
        serving_tf_version="2.15",
    )
    resource = bucket.upload(models.keras_a, "models/custom-image/v1/model.keras")
    with caplog.at_level(logging.WARNING, logger="handlers.pipeline"):
        assert _handle(pipeline, resource).outcome == "registered"
    assert not [r for r in caplog.records if "end of availability" in r.getMessage()]
