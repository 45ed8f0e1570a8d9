"""Cloud Function entry point: `register_model`, a CloudEvent function.

Only the light parts load here (settings, logging, functions-framework); TensorFlow and the Vertex
SDK load on the first event that needs them, so unrelated objects cost almost nothing.

By default (`FUNCTION_USE_ASGI` unset or true) functions-framework serves the function with
uvicorn: an event that is not part of a model upload is settled on the event loop in ~30 µs,
and only model uploads go to a worker thread, so they never hold up the cheap events. With
`FUNCTION_USE_ASGI=false` it is the classic gunicorn + Flask server, which also converts the
legacy 1st-gen background-event shape (2nd-gen triggers never send it).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

from handlers.logs import configure
from handlers.pipeline import Outcome, Pipeline
from handlers.settings import Settings

SETTINGS = Settings.from_env()  # fails fast at start-up, naming the bad variable
configure(SETTINGS.log_level)
_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()


def _get_pipeline() -> Pipeline:
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = Pipeline(SETTINGS)
        return _pipeline


def _unpack(cloud_event: CloudEvent) -> tuple[dict[str, Any], Any]:
    return dict(cloud_event.get_attributes()), cloud_event.get_data()


# Return = acknowledge (2xx); raising TransientError = 5xx, so the platform redelivers.
if SETTINGS.use_asgi:
    import functions_framework.aio

    @functions_framework.aio.cloud_event
    async def register_model(cloud_event: CloudEvent) -> None:
        pipeline = _get_pipeline()
        triaged = pipeline.triage(*_unpack(cloud_event))
        if not isinstance(triaged, Outcome):
            await asyncio.to_thread(pipeline.handle_model, triaged)

else:

    @functions_framework.cloud_event
    def register_model(cloud_event: CloudEvent) -> None:
        _get_pipeline().handle(*_unpack(cloud_event))
