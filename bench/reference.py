"""The reference side of the model benchmarks, run in child processes: the bare work a naive
registrar does (Keras load + one UploadModel with the GAPIC client), without our pipeline.

`serve()` is a warm reference worker speaking JSON lines on stdin/stdout; `cold_once()` is one
fresh-process run; `load_only()` is the plain load used for the large-model memory reference.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PARENT = "projects/bench-project/locations/us-central1"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def _client(vertex_url: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(
        transport="rest",
        client_options={"api_endpoint": vertex_url},
        credentials=AnonymousCredentials(),
    )


def _load(path: str) -> None:
    import keras

    if path.endswith(".keras"):
        keras.saving.load_model(path)
    else:
        import tensorflow as tf

        tf.saved_model.load(path)


def _upload(client: Any, display_name: str, artifact_uri: str) -> str:
    from google.cloud.aiplatform_v1 import types

    model = types.Model(
        display_name=display_name,
        artifact_uri=artifact_uri,
        container_spec=types.ModelContainerSpec(image_uri=IMAGE),
    )
    operation = client.upload_model(parent=PARENT, model=model)
    return operation.result(timeout=60).model


def serve(vertex_url: str) -> None:
    """Warm process: imports done once; each request times load and upload separately."""
    import keras  # noqa: F401
    from google.cloud import aiplatform_v1  # noqa: F401

    client = _client(vertex_url)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        begun = time.perf_counter()
        _load(request["path"])
        loaded = time.perf_counter()
        _upload(client, request["display_name"], request["artifact_uri"])
        done = time.perf_counter()
        answer = {"load_s": loaded - begun, "upload_s": done - loaded, "total_s": done - begun}
        print(json.dumps(answer), flush=True)


def cold_once(path: str, vertex_url: str, display_name: str, artifact_uri: str) -> None:
    """Fresh process: TF/Keras import + load + aiplatform_v1 import + client + one upload."""
    import keras  # noqa: F401

    _load(path)
    client = _client(vertex_url)
    _upload(client, display_name, artifact_uri)
    print("done", flush=True)


def load_only(path: str) -> None:
    """Plain `keras.saving.load_model` (or `tf.saved_model.load` for a directory)."""
    import keras  # noqa: F401

    print("imported", flush=True)
    begun = time.perf_counter()
    _load(path)
    print(json.dumps({"load_s": time.perf_counter() - begun}), flush=True)
    sys.stdin.readline()  # hold the loaded model until the parent has its last sample


if __name__ == "__main__":
    serve(sys.argv[1])
