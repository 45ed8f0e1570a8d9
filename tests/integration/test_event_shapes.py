"""Every event shape the function accepts registers the same upload the same way, over HTTP:
binary mode (Eventarc), structured mode, the Pub/Sub notification of trigger mode `notification`,
and, under FUNCTION_USE_ASGI=false, the legacy 1st-gen background shape (functions-framework's
Flask server converts it; its ASGI server does not, and 2nd-gen triggers never send it)."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from tests.conftest import Bucket, Models, Vertex, deliver


def _structured(resource: dict) -> tuple[dict, bytes]:
    event = {
        "specversion": "1.0",
        "id": "s-1",
        "type": "google.cloud.storage.object.v1.finalized",
        "source": f"//storage.googleapis.com/projects/_/buckets/{resource['bucket']}",
        "subject": f"objects/{resource['name']}",
        "datacontenttype": "application/json",
        "data": resource,
    }
    return {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()


def _legacy(resource: dict) -> tuple[dict, bytes]:
    body = {
        "context": {
            "eventId": "1147091835525187",
            "timestamp": "2026-11-26T10:00:00.000Z",
            "eventType": "google.storage.object.finalize",
            "resource": {
                "service": "storage.googleapis.com",
                "name": f"projects/_/buckets/{resource['bucket']}/objects/{resource['name']}",
                "type": "storage#object",
            },
        },
        "data": resource,
    }
    return {"Content-Type": "application/json"}, json.dumps(body).encode()


def _pubsub(resource: dict) -> tuple[dict, bytes]:
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "ps-1",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/test-project/topics/uploads",
    }
    body = {
        "message": {
            "data": base64.b64encode(json.dumps(resource).encode()).decode(),
            "attributes": {
                "eventType": "OBJECT_FINALIZE",
                "payloadFormat": "JSON_API_V1",
                "bucketId": resource["bucket"],
                "objectId": resource["name"],
                "objectGeneration": str(resource["generation"]),
            },
            "messageId": "ps-1",
        },
        "subscription": "projects/test-project/subscriptions/s",
    }
    return headers, json.dumps(body).encode()


@pytest.mark.parametrize(
    ("server", "shape"),
    [
        ("function_client", _structured),
        ("function_client", _pubsub),
        ("wsgi_function_client", _structured),
        ("wsgi_function_client", _legacy),
        ("wsgi_function_client", _pubsub),
    ],
    ids=["asgi-structured", "asgi-pubsub", "wsgi-structured", "wsgi-legacy", "wsgi-pubsub"],
)
def test_each_event_shape_registers_the_upload(
    request: pytest.FixtureRequest,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
    server: str,
    shape,
) -> None:
    function_client = request.getfixturevalue(server)
    display = f"shape-{server.split('_')[0]}-{shape.__name__.strip('_')}"
    name = f"models/{display}/v1/model.keras"
    resource = bucket.upload(models.keras_a, name)
    headers, body = shape(resource)
    assert function_client.post("/", data=body, headers=headers).status_code == 200
    [model] = vertex.models(display)
    [version] = vertex.versions(model["name"])
    assert version["labels"]["source-generation"] == str(resource["generation"])
    # The same upload announced the other way is the same upload: acknowledged, not doubled.
    assert deliver(function_client, resource) == 200
    assert len(vertex.versions(model["name"])) == 1


def test_asgi_server_refuses_the_legacy_shape_with_a_client_error(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """Documented limit: only functions-framework's Flask server converts the 1st-gen shape."""
    resource = bucket.upload(models.keras_a, "models/legacy-asgi/v1/model.keras")
    headers, body = _legacy(resource)
    reply = function_client.post("/", data=body, headers=headers)
    assert reply.status_code == 400
    assert "CloudEvent" in reply.text
    assert vertex.models("legacy-asgi") == []


def test_pubsub_notification_for_another_event_type_is_ignored(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    resource = bucket.upload(models.keras_a, "models/deleted/v1/model.keras")
    headers, body = _pubsub(resource)
    payload = json.loads(body)
    payload["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    assert function_client.post("/", data=json.dumps(payload), headers=headers).status_code == 200
    assert vertex.models() == []


@pytest.mark.parametrize("asgi", [True, False], ids=["asgi", "flask"])
def test_a_failed_delivery_is_one_503_without_a_framework_traceback(
    asgi: bool, function_client, wsgi_function_client, bucket, vertex, models, caplog
) -> None:
    """Both servers answer a transient failure with a plain 503 and log it once (the pipeline's
    `failed` line), so the failures metric counts one failed delivery once."""
    client = function_client if asgi else wsgi_function_client
    resource = bucket.upload(models.keras_b, f"models/one-line-{asgi}/v1/model.keras")
    vertex.fault("UploadModel", count=1_000_000, status=503)  # outlasts the in-process retries
    with caplog.at_level(logging.ERROR):
        assert deliver(client, resource) == 503
    failed = [r for r in caplog.records if getattr(r, "json_fields", {}).get("outcome") == "failed"]
    assert len(failed) == 1
    tracebacks = [r for r in caplog.records if "Exception on" in r.getMessage() or r.exc_info]
    assert tracebacks == []
