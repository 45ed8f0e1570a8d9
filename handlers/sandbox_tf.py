"""TensorFlow work done inside the sandboxed worker only (imported by `handlers.sandbox_worker`).

Never import this module in the function process: it imports TensorFlow and Keras at import time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import tensorflow as tf

from handlers.sandbox_keras_load import load_keras_model
from handlers.sandbox_worker import Failure


def load_keras(path: str, export_dir: str, *, release_source: bool = False) -> dict[str, Any]:
    """Load a `.keras` file safely, smoke-test it, export a serving SavedModel and check that.

    The Keras model is released before the export is reloaded, so the two never coexist in memory.
    `release_source` deletes `path` once the weights are in memory (the caller's throwaway copy,
    RAM on Cloud Functions), so it does not sit next to the export being written.
    """
    model = load_keras_model(path)
    if release_source:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    _export_keras(model, export_dir)
    del model
    gc.collect()  # Keras layers and tf.functions hold reference cycles: free the weights now
    return load_saved_model(export_dir)


def _export_keras(model: Any, export_dir: str) -> None:
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise Failure("load_failed", "the model has no defined inputs (build it with keras.Input)")
    specs = [
        tf.TensorSpec(tuple(t.shape), tf.as_dtype(t.dtype), name=_safe_name(t.name, f"input_{i}"))
        for i, t in enumerate(inputs)
    ]
    output_names = [_safe_name(n, f"output_{i}") for i, n in enumerate(_output_names(model))]

    @tf.function(input_signature=specs)
    def serve(*args: Any) -> dict[str, Any]:
        outputs = model(list(args) if len(args) > 1 else args[0], training=False)
        flat = tf.nest.flatten(outputs)
        names = output_names if len(output_names) == len(flat) else []
        names = names or [f"output_{i}" for i in range(len(flat))]
        return dict(zip(names, flat, strict=True))

    concrete = serve.get_concrete_function()
    # tf.saved_model.save, not model.export(): export writes every weight twice (keras#23553).
    tf.saved_model.save(model, export_dir, signatures={"serving_default": concrete})


def load_saved_model(directory: str) -> dict[str, Any]:
    """`tf.saved_model.load` the directory and call serving_default once with zeros."""
    _check_fingerprint(directory)
    loaded = tf.saved_model.load(directory)
    if "serving_default" not in loaded.signatures:
        raise Failure("savedmodel.missing_serving_default", "no serving_default after load")
    fn = loaded.signatures["serving_default"]
    input_specs = fn.structured_input_signature[1]
    output_specs = fn.structured_outputs
    described_in = {k: _describe(v) for k, v in sorted(input_specs.items())}
    described_out = {k: _describe(v) for k, v in sorted(output_specs.items())}
    result = {
        "inputs": [dict(name=k, **v) for k, v in described_in.items()],
        "outputs": [dict(name=k, **v) for k, v in described_out.items()],
    }
    skip = _skip_reason(input_specs)
    if skip:
        result["smoke"] = f"skipped: {skip}"
        return result
    feed = {
        name: tf.zeros([1 if d is None else d for d in spec.shape.as_list()], spec.dtype)
        for name, spec in input_specs.items()
    }
    outputs = fn(**feed)
    for name, value in outputs.items():
        spec = output_specs.get(name)
        if spec is not None and not spec.shape.is_compatible_with(value.shape):
            raise Failure(
                "smoke.bad_shape",
                f"output {name!r} has shape {value.shape.as_list()} but the signature declares "
                f"{spec.shape.as_list()}",
            )
        array = value.numpy()
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise Failure(
                "smoke.non_finite",
                f"output {name!r} contains NaN or infinity for all-zero inputs",
            )
    result["smoke"] = "passed"
    return result


def _check_fingerprint(directory: str) -> None:
    """fingerprint.pb (TF >= 2.12) hashes saved_model.pb and the variables index of one save:
    a mismatch means the directory mixes files of two saves (e.g. an overwrite in progress)."""
    path = os.path.join(directory, "fingerprint.pb")
    if not os.path.isfile(path):
        return
    from tensorflow.core.protobuf import fingerprint_pb2
    from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting

    stored = fingerprint_pb2.FingerprintDef()
    try:
        with open(path, "rb") as handle:
            stored.ParseFromString(handle.read())
    except Exception as exc:  # noqa: BLE001 protobuf raises DecodeError and others
        raise Failure(
            "savedmodel.bad_fingerprint", f"fingerprint.pb does not parse: {exc}"
        ) from None
    fresh = fingerprint_pb2.FingerprintDef()
    fresh.ParseFromString(fingerprinting.CreateFingerprintDef(directory))
    mismatched = [
        name
        for name in ("saved_model_checksum", "checkpoint_hash")
        if getattr(stored, name) != getattr(fresh, name)
    ]
    if mismatched:
        raise Failure(
            "savedmodel.fingerprint_mismatch",
            f"fingerprint.pb does not match the files ({', '.join(mismatched)} differ): the "
            "directory mixes files of two different saves. Upload the whole SavedModel again.",
        )


def _skip_reason(specs: dict[str, Any]) -> str | None:
    for name, spec in specs.items():
        if not isinstance(spec, tf.TensorSpec):
            return f"input {name!r} is a {type(spec).__name__}"
        if spec.dtype in (tf.string, tf.variant, tf.resource):
            return f"input {name!r} has dtype {spec.dtype.name}"
        if spec.shape.rank is None:
            return f"input {name!r} has unknown rank"
    return None


def _describe(spec: Any) -> dict[str, Any]:
    shape = getattr(spec, "shape", None)
    dims = [] if shape is None or shape.rank is None else shape.as_list()
    dtype = getattr(spec, "dtype", None)
    return {"dtype": dtype.name if dtype is not None else type(spec).__name__, "shape": dims}


def _output_names(model: Any) -> list[str]:
    names = getattr(model, "output_names", None)
    return [str(n) for n in names] if names else []


def _safe_name(name: Any, default: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name or ""))
    return text if re.match(r"^[A-Za-z]", text) else default
