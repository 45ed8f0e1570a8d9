"""Reference for the unrelated-events benchmark: a CloudEvent function that does nothing, served
by the same functions-framework server as main.py (FUNCTION_USE_ASGI picks it the same way), so
its latency and throughput are the framework's floor."""

from __future__ import annotations

import os

import functions_framework
import functions_framework.aio
from cloudevents.http import CloudEvent

if os.environ.get("FUNCTION_USE_ASGI", "true").lower() in ("1", "true", "t", "yes", "y", "on"):

    @functions_framework.aio.cloud_event
    async def register_model(cloud_event: CloudEvent) -> None:
        _ = cloud_event.get_data()

else:

    @functions_framework.cloud_event
    def register_model(cloud_event: CloudEvent) -> None:
        _ = cloud_event.get_data()
