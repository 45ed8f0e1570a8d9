"""Reference for the unrelated-events benchmark: a CloudEvent function that does nothing, served
by the same functions-framework, so its latency and throughput are the framework's floor."""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent


@functions_framework.cloud_event
def register_model(cloud_event: CloudEvent) -> None:
    _ = cloud_event.get_data()
