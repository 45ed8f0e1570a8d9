"""Event bridge: turns every new object generation in fake-gcs-server into the binary-mode
CloudEvent Eventarc would send (`google.cloud.storage.object.v1.finalized`), POSTed to the function.

fake-gcs-server can only publish to Pub/Sub, so we poll its JSON API listing and diff generations.
Delivery is at-least-once like the real thing: a 5xx answer is retried with backoff (10 s -> 60 s
here, 10 s -> 600 s on Google Cloud) until it succeeds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

_ids = itertools.count(14406128144428067)


def binary_event(obj: dict[str, Any], event_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """Headers and body of the binary-mode CloudEvent for one object resource."""
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": event_id or str(next(_ids)),
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{obj['bucket']}",
        "ce-subject": f"objects/{obj['name']}",
        "ce-time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "ce-bucket": obj["bucket"],
    }
    return headers, json.dumps(obj).encode()


def list_objects(storage_url: str, bucket: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    while True:
        params = {"maxResults": 1000, **({"pageToken": token} if token else {})}
        reply = requests.get(f"{storage_url}/storage/v1/b/{bucket}/o", params=params, timeout=10)
        reply.raise_for_status()
        body = reply.json()
        items.extend(body.get("items", []))
        token = body.get("nextPageToken")
        if not token:
            return items


@dataclass
class Delivery:
    obj: dict[str, Any]
    event_id: str
    attempts: int = 0
    not_before: float = 0.0


@dataclass
class EventBridge:
    storage_url: str
    bucket: str
    function_url: str
    interval: float = 0.3
    max_backoff: float = 60.0
    seen: dict[str, str] = field(default_factory=dict)
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (name, http status)
    _pending: list[Delivery] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll_once(self) -> int:
        """Queue events for new generations and deliver what is due; returns events queued."""
        queued = 0
        for obj in list_objects(self.storage_url, self.bucket):
            if self.seen.get(obj["name"]) != str(obj["generation"]):
                self.seen[obj["name"]] = str(obj["generation"])
                self._pending.append(Delivery(obj, str(next(_ids))))
                queued += 1
        self._deliver_due()
        return queued

    def idle(self) -> bool:
        return not self._pending

    def _deliver_due(self) -> None:
        now = time.monotonic()
        due = [d for d in self._pending if d.not_before <= now]
        for delivery in due:
            headers, body = binary_event(delivery.obj, delivery.event_id)
            try:
                status = requests.post(
                    self.function_url, data=body, headers=headers, timeout=600
                ).status_code
            except requests.RequestException:
                status = 599
            delivery.attempts += 1
            self.delivered.append((delivery.obj["name"], status))
            if status < 300:
                self._pending.remove(delivery)
            else:  # redeliver with exponential backoff, as Pub/Sub push does
                delay = min(self.max_backoff, 10.0 * 2 ** (delivery.attempts - 1))
                delivery.not_before = time.monotonic() + delay

    def start(self) -> EventBridge:
        self._thread = threading.Thread(target=self._run, name="event-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except requests.RequestException:
                pass  # the emulator is restarting or gone; keep trying until stopped
            self._stop.wait(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", required=True, help="fake-gcs-server URL")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--function", required=True, help="functions-framework URL")
    args = parser.parse_args()
    bridge = EventBridge(args.storage, args.bucket, args.function)
    print(f"event bridge: gs://{args.bucket} -> {args.function}", flush=True)
    bridge._run()


if __name__ == "__main__":
    main()
