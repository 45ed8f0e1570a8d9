"""CloudEvent -> `ObjectEvent`: the only module that knows the event shapes.

Accepted (recorded payloads of each shape are in tests/data/):
* `google.cloud.storage.object.v1.finalized`, binary or structured mode; the 1st-gen background
  shape arrives already converted by functions-framework.
* `google.cloud.pubsub.topic.v1.messagePublished` from a GCS Pub/Sub notification (trigger mode
  `notification`): the object resource is base64 JSON in `message.data`, the attributes carry
  `bucketId`, `objectId`, `objectGeneration`, `eventType`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
ACCEPTED_EVENT_TYPES = frozenset({STORAGE_FINALIZED, PUBSUB_PUBLISHED})


class MalformedEvent(ValueError):
    """The event cannot describe an object; retrying it can never help."""


class NotAFinalizeEvent(Exception):
    """A well-formed event of a kind we do not act on (other type, other notification event)."""


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    name: str
    generation: int
    event_id: str = ""
    event_type: str = STORAGE_FINALIZED
    metageneration: int | None = None
    size: int | None = None
    crc32c: str | None = None
    md5_hash: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_object(cls, obj: Any, *, event_id: str) -> ObjectEvent:
        """The finalize event an object generation (`gcs.objects.ObjectInfo`) would have sent:
        how backfill and late metrics feed listed objects through the same path as events."""
        return cls(
            bucket=obj.bucket,
            name=obj.name,
            generation=obj.generation,
            event_id=event_id,
            size=obj.size,
            crc32c=obj.crc32c,
            md5_hash=obj.md5_hash,
            metadata=dict(obj.metadata),
        )

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def parse_event(attributes: dict[str, Any], data: Any) -> ObjectEvent:
    """Parse one delivery. Raises `NotAFinalizeEvent` (ignore) or `MalformedEvent` (log, ack)."""
    event_type = str(attributes.get("type", ""))
    event_id = str(attributes.get("id", ""))
    if event_type == STORAGE_FINALIZED:
        resource = _as_json_object(data, "event data")
        return _object_event(resource, event_id, event_type, fallback={})
    if event_type == PUBSUB_PUBLISHED:
        return _from_pubsub(_as_json_object(data, "event data"), event_id)
    raise NotAFinalizeEvent(f"event type {event_type!r} is not an object-finalize event")


def _from_pubsub(body: dict[str, Any], event_id: str) -> ObjectEvent:
    message = body.get("message")
    if not isinstance(message, dict):
        raise MalformedEvent("Pub/Sub event has no `message` object")
    attrs = message.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise MalformedEvent("Pub/Sub message `attributes` is not an object")
    notification_type = attrs.get("eventType")
    if notification_type is not None and notification_type != "OBJECT_FINALIZE":
        raise NotAFinalizeEvent(f"GCS notification eventType {notification_type!r}")
    resource: dict[str, Any] = {}
    raw = message.get("data")
    if raw:  # absent when the notification's payload format is NONE
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise MalformedEvent("Pub/Sub `message.data` is not base64") from None
        resource = _as_json_object(decoded, "Pub/Sub message.data")
    fallback = {
        "bucket": attrs.get("bucketId"),
        "name": attrs.get("objectId"),
        "generation": attrs.get("objectGeneration"),
    }
    return _object_event(
        resource, str(message.get("messageId") or event_id), PUBSUB_PUBLISHED, fallback=fallback
    )


def _object_event(
    resource: dict[str, Any], event_id: str, event_type: str, *, fallback: dict[str, Any]
) -> ObjectEvent:
    bucket = resource.get("bucket") or fallback.get("bucket")
    name = resource.get("name") or fallback.get("name")
    if not isinstance(bucket, str) or not bucket:
        raise MalformedEvent("event has no object `bucket`")
    if not isinstance(name, str) or not name:
        raise MalformedEvent("event has no object `name`")
    generation = _int_field(resource.get("generation", fallback.get("generation")), "generation")
    if generation is None:
        raise MalformedEvent(f"event for gs://{bucket}/{name} has no object `generation`")
    metadata = resource.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise MalformedEvent("object `metadata` is not a map of strings")
    return ObjectEvent(
        bucket=bucket,
        name=name,
        generation=generation,
        event_id=event_id,
        event_type=event_type,
        metageneration=_int_field(resource.get("metageneration"), "metageneration"),
        size=_int_field(resource.get("size"), "size"),
        crc32c=resource.get("crc32c"),
        md5_hash=resource.get("md5Hash"),
        content_type=resource.get("contentType"),
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def _int_field(value: Any, field_name: str) -> int | None:
    # int64 fields arrive as JSON strings in real payloads and as ints in Google's samples.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise MalformedEvent(f"object `{field_name}` is a boolean, expected an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MalformedEvent(f"object `{field_name}`={value!r} is not an integer") from None
    if number < 0:
        raise MalformedEvent(f"object `{field_name}`={number} is negative")
    return number


def _as_json_object(data: Any, what: str) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedEvent(f"{what} is not UTF-8 text") from None
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise MalformedEvent(f"{what} is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedEvent(f"{what} is not a JSON object (got {type(data).__name__})")
    return data
