"""Cloud Function entry point: `register_model`, a CloudEvent function.

Only the light parts load here (settings, logging, functions-framework); TensorFlow and the Vertex
SDK load on the first event that needs them, so unrelated objects cost almost nothing.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent

from handlers.logs import configure
from handlers.pipeline import Pipeline
from handlers.settings import Settings

SETTINGS = Settings.from_env()  # fails fast at start-up, naming the bad variable
configure(SETTINGS.log_level)
_pipeline: Pipeline | None = None


def _get_pipeline() -> Pipeline:
    global _pipeline
    if _pipeline is None:
        _pipeline = Pipeline(SETTINGS)
    return _pipeline


@functions_framework.cloud_event
def register_model(cloud_event: CloudEvent) -> None:
    """Return = acknowledge (2xx); raising TransientError = 5xx, so the platform redelivers."""
    _get_pipeline().handle(dict(cloud_event.get_attributes()), cloud_event.get_data())
