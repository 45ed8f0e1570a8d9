"""Event parsing against recorded payload shapes (tests/data), through the real CloudEvent types."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cloudevents.http import from_http

from handlers.intake.events import (
    PUBSUB_PUBLISHED,
    STORAGE_FINALIZED,
    MalformedEvent,
    NotAFinalizeEvent,
    parse_event,
)

DATA = Path(__file__).resolve().parents[1] / "data"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_binary_mode_event_with_string_int64_fields() -> None:
    sample = _load("storage_finalized_binary.json")
    event = from_http(sample["headers"], json.dumps(sample["body"]))
    parsed = parse_event(dict(event.get_attributes()), event.get_data())
    assert parsed.bucket == "my-models"
    assert parsed.name == "models/fraud-detector/v7/model.keras"
    assert parsed.generation == 1764151200000000
    assert parsed.metageneration == 1 and parsed.size == 1082804
    assert parsed.metadata == {"description": "weekly retrain"}
    assert parsed.event_id == "14406128144428067"


def test_structured_mode_event_with_int_fields() -> None:
    sample = _load("storage_finalized_structured.json")
    event = from_http({"Content-Type": "application/cloudevents+json"}, json.dumps(sample))
    parsed = parse_event(dict(event.get_attributes()), event.get_data())
    assert parsed.generation == 1764151200000000 and parsed.size == 1082804


def test_pubsub_notification_is_treated_like_the_direct_event() -> None:
    sample = _load("pubsub_notification.json")
    direct = _load("storage_finalized_binary.json")["body"]
    sample["body"]["message"]["data"] = base64.b64encode(json.dumps(direct).encode()).decode()
    event = from_http(sample["headers"], json.dumps(sample["body"]))
    parsed = parse_event(dict(event.get_attributes()), event.get_data())
    assert parsed.event_type == PUBSUB_PUBLISHED
    assert (parsed.bucket, parsed.name, parsed.generation) == (
        "my-models",
        "models/fraud-detector/v7/model.keras",
        1764151200000000,
    )
    assert parsed.metadata == {"description": "weekly retrain"}


def test_pubsub_notification_without_payload_uses_attributes() -> None:
    body = _load("pubsub_notification.json")["body"]
    del body["message"]["data"]
    parsed = parse_event({"type": PUBSUB_PUBLISHED, "id": "1"}, body)
    assert parsed.generation == 1764151200000000 and parsed.name.endswith("model.keras")


def test_pubsub_delete_notification_is_not_a_finalize() -> None:
    body = _load("pubsub_notification.json")["body"]
    body["message"]["attributes"]["eventType"] = "OBJECT_DELETE"
    with pytest.raises(NotAFinalizeEvent):
        parse_event({"type": PUBSUB_PUBLISHED}, body)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json", "not JSON"),
        ({"name": "models/a.keras", "generation": "1"}, "bucket"),
        ({"bucket": "b", "generation": "1"}, "name"),
        ({"bucket": "b", "name": "models/a.keras"}, "generation"),
        ({"bucket": "b", "name": "models/a.keras", "generation": "abc"}, "generation"),
        ({"bucket": "b", "name": "models/a.keras", "generation": "1", "metadata": "x"}, "metadata"),
        ([1, 2], "JSON object"),
    ],
)
def test_malformed_events_say_what_is_wrong(data: object, problem: str) -> None:
    with pytest.raises(MalformedEvent, match=problem):
        parse_event({"type": STORAGE_FINALIZED}, data)


def test_other_event_types_are_not_finalize_events() -> None:
    with pytest.raises(NotAFinalizeEvent):
        parse_event({"type": "google.cloud.storage.object.v1.deleted"}, {"bucket": "b"})
