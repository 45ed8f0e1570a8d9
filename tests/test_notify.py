"""Outcome notifications. There is no Pub/Sub emulator on this machine (it ships with the gcloud
SDK, not PyPI), so the publisher client is the one thing replaced: a recorder with the same
`publish(topic, data, **attributes) -> future` surface. Everything else is real."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import Future
from typing import Any

from dev.bridge import binary_event
from handlers.notify import Notifier
from handlers.pipeline import Pipeline
from handlers.settings import Settings
from tests.conftest import Bucket, Models, Vertex, function_env


class RecordingPublisher:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any], dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attributes: str) -> Future:
        self.messages.append((topic, json.loads(data), attributes))
        done: Future = Future()
        done.set_result("message-id")
        return done


TOPIC = "projects/test-project/topics/model-outcomes"


def _pipeline(services, publisher: RecordingPublisher) -> Pipeline:
    settings = dataclasses.replace(Settings.from_env(function_env(services)), notify_topic=TOPIC)
    return Pipeline(settings, notifier=Notifier(TOPIC, publisher=publisher))


def _handle(pipeline: Pipeline, resource: dict) -> str:
    headers, body = binary_event(resource)
    return pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body).outcome


def test_one_message_per_final_outcome(
    services, bucket: Bucket, vertex: Vertex, models: Models, tmp_path
) -> None:
    publisher = RecordingPublisher()
    pipeline = _pipeline(services, publisher)
    good = bucket.upload(models.keras_a, "models/notified/v1/model.keras")
    junk_path = tmp_path / "junk.keras"
    junk_path.write_bytes(b"not a zip")
    junk = bucket.upload(junk_path, "models/notified/v2/model.keras")
    assert _handle(pipeline, good) == "registered"
    assert _handle(pipeline, good) == "duplicate"  # no second message for a duplicate
    assert _handle(pipeline, junk) == "rejected"
    assert _handle(pipeline, bucket.upload_bytes(b"x", "models/notified/notes.md")) == "ignored"
    states = [(m[1]["state"], m[2]["outcome"]) for m in publisher.messages]
    assert states == [("registered", "registered"), ("rejected", "rejected")]
    topic, record, attributes = publisher.messages[0]
    assert topic == TOPIC
    assert record["version_name"].endswith("/models/notified@1")
    assert attributes["source"] == f"gs://{bucket.name}/models/notified/v1/model.keras"


def test_publish_failure_never_fails_the_upload(
    services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    class Broken(RecordingPublisher):
        def publish(self, topic: str, data: bytes, **attributes: str) -> Future:
            raise ConnectionError("pubsub unreachable")

    pipeline = _pipeline(services, Broken())
    resource = bucket.upload(models.keras_b, "models/notify-broken/v1/model.keras")
    assert _handle(pipeline, resource) == "registered"
