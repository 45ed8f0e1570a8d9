"""Shared by the emulator tests: a valid GAPIC UploadModel, resource names, the project/region."""

from __future__ import annotations

from typing import Any

PROJECT = "emu-project"  # as in conftest.py
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def upload(
    gapic: Any, *, model_id: str = "", parent_model: str = "", parent: str = PARENT, **fields: Any
) -> Any:
    """GAPIC UploadModel (REST) with a valid model unless `fields` override parts of it."""
    from google.cloud.aiplatform_v1 import types

    model: dict[str, Any] = {
        "display_name": "churn",
        "artifact_uri": "gs://models-bkt/churn/1/",
        "container_spec": {"image_uri": IMAGE},
    }
    model.update(fields)
    model = {k: v for k, v in model.items() if v is not None}
    request = types.UploadModelRequest(
        parent=parent, model=types.Model(model), model_id=model_id, parent_model=parent_model
    )
    return gapic.upload_model(request=request, timeout=10).result(timeout=10)


def name(model_id: str, parent: str = PARENT) -> str:
    return f"{parent}/models/{model_id}"
