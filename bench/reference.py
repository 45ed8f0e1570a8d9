"""The reference side of the model benchmarks, run in child processes: the bare work a naive
registrar does (Keras load + one UploadModel with the GAPIC client), without our pipeline.

`serve()` is a warm reference worker speaking JSON lines on stdin/stdout; `serve_required()` is
a second one doing the work issue 3 requires, directly (see `required_work`); `cold_once()` is
one fresh-process run; `load_only()` is the plain load used for the large-model memory reference.
`python -m bench.reference VERTEX_URL` runs `serve`, `... --required VERTEX_URL STORAGE_URL
PROJECT` runs `serve_required`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PARENT = "projects/bench-project/locations/us-central1"
# the pipeline's default serving image (TF Serving through Artifact Registry; no end of availability)
IMAGE = "us-central1-docker.pkg.dev/bench-project/tensorflow-serving/tensorflow/serving:2.20.0"


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


def _storage(storage_url: str, project: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": storage_url},
    )


def required_work(
    path: str, client: Any, storage_client: Any, display_name: str, artifact_uri: str
) -> dict[str, float]:
    """What issue 3 requires for a `.keras` upload, done directly, without our pipeline (no
    static scan, sandbox process, records, digests, manifest, copy of the .keras or dedupe):

    load (safe_mode) -> one prediction on a sample batch -> `tf.saved_model.save` of the Keras
    model with an explicit serving_default to a temp dir -> `tf.saved_model.load` + one call of
    serving_default -> upload of the export's files to `artifact_uri` (google-cloud-storage,
    one after the other) -> one UploadModel. Returns seconds per step and the total.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    steps: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[step] = now - mark
        mark = now

    begun = mark
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    lap("load")
    shapes = [[1, *t.shape[1:]] for t in model.inputs]
    sample = [
        np.random.default_rng(0).standard_normal(s).astype(t.dtype)
        for s, t in zip(shapes, model.inputs, strict=True)
    ]
    model(
        sample if len(sample) > 1 else sample[0], training=False
    )  # a direct call: predict() retraces per model
    lap("predict")
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]

    @tf.function(input_signature=specs)
    def serving(*args: Any) -> dict[str, Any]:
        return {"output_0": model(list(args) if len(args) > 1 else args[0], training=False)}

    export = Path(tempfile.mkdtemp(prefix="ref-export-"))
    try:
        signature = serving.get_concrete_function()
        tf.saved_model.save(model, str(export), signatures={"serving_default": signature})
        lap("export")
        loaded = tf.saved_model.load(str(export))
        fn = loaded.signatures["serving_default"]
        fn(**{s.name: tf.constant(x) for s, x in zip(specs, sample, strict=True)})
        lap("reload_and_call")
        bucket_name, _, prefix = artifact_uri.removeprefix("gs://").partition("/")
        bucket = storage_client.bucket(bucket_name)
        for file in sorted(p for p in export.rglob("*") if p.is_file()):
            name = prefix + file.relative_to(export).as_posix()
            bucket.blob(name).upload_from_filename(str(file), if_generation_match=0)
        lap("upload_export")
    finally:
        shutil.rmtree(export, ignore_errors=True)
    _upload(client, display_name, artifact_uri)
    lap("upload_model")
    steps["total_s"] = time.perf_counter() - begun
    return steps


def serve_required(vertex_url: str, storage_url: str, project: str) -> None:
    """Warm process for `required_work`: imports and both clients made once."""
    import keras  # noqa: F401
    import tensorflow as tf  # noqa: F401

    client = _client(vertex_url)
    storage_client = _storage(storage_url, project)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        answer = required_work(
            request["path"],
            client,
            storage_client,
            request["display_name"],
            request["artifact_uri"],
        )
        print(json.dumps(answer), flush=True)


def cold_once(path: str, vertex_url: str, display_name: str, artifact_uri: str) -> None:
    """Fresh process: TF/Keras import + load + aiplatform_v1 import + client + one upload."""
    import keras  # noqa: F401

    _load(path)
    client = _client(vertex_url)
    _upload(client, display_name, artifact_uri)
    print("done", flush=True)


def required_large(path: str, storage_url: str, project: str, bucket: str, prefix: str) -> None:
    """The work a large upload requires, done directly (issue 22's floor): fetch the source
    object(s) from `prefix`src/ to `path` (google-cloud-storage's `download_to_filename`, one
    file after the other: the upload lives in the bucket, and nothing loads it without its
    bytes), load the model, export a `.keras` as a SavedModel (`tf.saved_model.save`), upload the
    export's files, and copy the source object(s) server-side under `prefix` — the same bytes
    our publish stage moves. Prints "imported", waits for a line, does the work, prints seconds
    per step."""
    import keras
    import tensorflow as tf

    storage_client = _storage(storage_url, project)
    handle = storage_client.bucket(bucket)
    sources = sorted(b.name for b in storage_client.list_blobs(bucket, prefix=f"{prefix}src/"))
    print("imported", flush=True)
    sys.stdin.readline()
    steps: dict[str, float] = {}
    mark = begun = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        steps[step] = now - mark
        mark = now

    local = Path(path)
    single = path.endswith(".keras")
    for name in sources:
        relative = name.removeprefix(f"{prefix}src/")
        target = local if single else local / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        handle.blob(name).download_to_filename(str(target))
    lap("download")
    if single:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    else:
        model = tf.saved_model.load(path)
    lap("load")
    export = Path(tempfile.mkdtemp(prefix="ref-export-"))
    try:
        if single:
            tf.saved_model.save(model, str(export))
        lap("export")
        for file in sorted(f for f in export.rglob("*") if f.is_file()):
            blob = handle.blob(f"{prefix}export/{file.relative_to(export).as_posix()}")
            blob.upload_from_filename(str(file))
        lap("upload")
    finally:
        shutil.rmtree(export, ignore_errors=True)
    for name in sources:
        relative = name.removeprefix(f"{prefix}src/")
        handle.copy_blob(handle.blob(name), handle, f"{prefix}copy/{relative}")
    lap("copy")
    steps["total"] = time.perf_counter() - begun
    print(json.dumps(steps), flush=True)
    sys.stdin.readline()


def load_only(path: str) -> None:
    """Plain `keras.saving.load_model` (or `tf.saved_model.load` for a directory)."""
    import keras  # noqa: F401

    print("imported", flush=True)
    begun = time.perf_counter()
    _load(path)
    print(json.dumps({"load_s": time.perf_counter() - begun}), flush=True)
    sys.stdin.readline()  # hold the loaded model until the parent has its last sample


if __name__ == "__main__":
    if sys.argv[1] == "--required":
        serve_required(*sys.argv[2:5])
    else:
        serve(sys.argv[1])
