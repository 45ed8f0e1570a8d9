"""Reference for the unrelated-events benchmark: a CloudEvent function that does nothing, served
by the same functions-framework server as main.py (FUNCTION_USE_ASGI picks it the same way), so
its latency and throughput are the framework's floor."""

from __future__ import annotations

import os

import click
import functions_framework
import functions_framework.aio
from cloudevents.http import CloudEvent

# Parsed with click's booleans, as functions-framework parses it (main.py's default: true).
if click.BOOL.convert(os.environ.get("FUNCTION_USE_ASGI") or "true", None, None):

    @functions_framework.aio.cloud_event
    async def register_model(cloud_event: CloudEvent) -> None:
        _ = cloud_event.get_data()

else:

    @functions_framework.cloud_event
    def register_model(cloud_event: CloudEvent) -> None:
        _ = cloud_event.get_data()
