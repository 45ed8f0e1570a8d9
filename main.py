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

from handlers.errors import TransientError
from handlers.hardening import harden_function_process, warn_if_landlock_missing
from handlers.logs import configure
from handlers.outcome import Outcome
from handlers.pipeline import Pipeline
from handlers.settings import Settings

SETTINGS = Settings.from_env()  # fails fast at start-up, naming the bad variable
configure(SETTINGS.log_level)
# Non-dumpable: the sandbox worker (same uid) cannot read our /proc/<pid>/environ or memory.
HARDENING = harden_function_process()
# gVisor (Cloud Run's first generation) has no Landlock: said once per instance, as a WARNING.
warn_if_landlock_missing(SETTINGS.sandbox_required_layers)
_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()


def _get_pipeline() -> Pipeline:
    global _pipeline
    with _pipeline_lock:
        if _pipeline is None:
            # The function's limits apply: uploads that do not fit it go to JOB_NAME.
            _pipeline = Pipeline(SETTINGS, hand_off=True)
        return _pipeline


def _unpack(cloud_event: CloudEvent) -> tuple[dict[str, Any], Any]:
    return dict(cloud_event.get_attributes()), cloud_event.get_data()


# Return = acknowledge (2xx); raising TransientError = 5xx, so the platform redelivers.
if SETTINGS.use_asgi:
    import functions_framework.aio
    from starlette.exceptions import HTTPException

    @functions_framework.aio.cloud_event
    async def register_model(cloud_event: CloudEvent) -> None:
        pipeline = _get_pipeline()
        triaged = pipeline.triage(*_unpack(cloud_event))
        if isinstance(triaged, Outcome):
            return
        try:
            await asyncio.to_thread(pipeline.handle_triaged, triaged)
        except TransientError as exc:
            # Already logged as one JSON line; a plain 503 asks for redelivery without the
            # framework logging a traceback for an expected condition.
            raise HTTPException(503, detail=f"retry later: {exc.code}") from exc

else:
    from werkzeug.exceptions import ServiceUnavailable

    @functions_framework.cloud_event
    def register_model(cloud_event: CloudEvent) -> None:
        try:
            _get_pipeline().handle(*_unpack(cloud_event))
        except TransientError as exc:
            # As above: a plain 503, no framework traceback, so the failed delivery is one log
            # entry (the `failed` line) and the failures metric counts it once.
            raise ServiceUnavailable(f"retry later: {exc.code}") from exc
