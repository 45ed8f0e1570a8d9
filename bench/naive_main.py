"""Reference for the cold-start benchmark: the registrar written the naive way, with every SDK and
TensorFlow imported at module load (as most Cloud Functions samples do). Never deployed."""

from __future__ import annotations

import functions_framework
import keras  # noqa: F401  (imports TensorFlow)
from cloudevents.http import CloudEvent
from google.cloud import aiplatform, storage  # noqa: F401


@functions_framework.cloud_event
def register_model(cloud_event: CloudEvent) -> None:
    """Same signature as main.register_model; the body is irrelevant to start-up cost."""
    _ = cloud_event.get_data()
