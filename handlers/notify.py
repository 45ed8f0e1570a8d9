"""Optional outcome notification: one Pub/Sub message per final outcome, the record as JSON.

Off unless NOTIFY_TOPIC is set; google-cloud-pubsub is imported only then. A failed publish is
logged, not retried through redelivery: the record in GCS stays the source of truth.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .logs import get_logger, log

_logger = get_logger(__name__)


class Notifier:
    def __init__(self, topic: str | None, publisher: Any = None) -> None:
        self._topic = topic
        self._publisher = publisher

    def publish(self, record: dict[str, Any]) -> None:
        if not self._topic:
            return
        try:
            if self._publisher is None:
                from google.cloud import pubsub_v1

                self._publisher = pubsub_v1.PublisherClient()
            future = self._publisher.publish(
                self._topic,
                json.dumps(record, sort_keys=True, default=str).encode(),
                outcome=str(record.get("state", "")),
                source=str(record.get("source", "")),
            )
            future.result(timeout=30)
        except Exception as exc:  # noqa: BLE001 - notification must never fail the upload
            log(
                _logger,
                logging.WARNING,
                f"could not publish outcome to {self._topic}: {exc}",
                topic=self._topic,
            )
