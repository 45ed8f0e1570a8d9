"""TensorFlow work done inside the sandboxed worker only (imported by `handlers.validation.sandbox.worker`).

Never import this module in the function process: it imports TensorFlow and Keras at import time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import tensorflow as tf
from tensorflow.saved_model.experimental import TrackableResource

from . import feeds
from .checks import Reference, check_export, check_upload, skip_reason
from .keras_load import load_keras_model
from .protocol import LOAD_FAILED, Failure


def load_keras(path: str, export_dir: str, *, release_source: bool = False) -> dict[str, Any]:
    """Load a `.keras` file safely, export a serving SavedModel, load that the way TF Serving
    does, smoke-test it and compare its outputs with the Keras model's on a seeded sample.

    The Keras model is released before the export is reloaded, so the two never coexist in memory
    (only the sample and the Keras outputs for it, batch 1, are kept for the comparison).
    `release_source` deletes `path` once the weights are in memory (the caller's throwaway copy,
    RAM on Cloud Functions), so it does not sit next to the export being written.
    """
    try:
        model = load_keras_model(path)
    except (Failure, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 Keras' text (it names layers) is for the log only
        kind = type(exc).__name__
        raise Failure(LOAD_FAILED, f"{kind}: {exc}", step="load", error=kind) from None
    if release_source:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    specs, output_names = _export_keras(model, export_dir)
    check = _keras_reference(model, specs, output_names)
    del model
    gc.collect()  # Keras layers and tf.functions hold reference cycles: free the weights now
    return check_export(export_dir, check)


def check_fingerprint(directory: str) -> dict[str, Any]:
    """Does `directory/fingerprint.pb` belong to the save of its `saved_model.pb` and index?"""
    from .checks import _check_fingerprint

    _check_fingerprint(directory)
    return {"fingerprint": "matches"}


def load_saved_model(directory: str) -> dict[str, Any]:
    """Smoke-test an uploaded SavedModel, with `tf.saved_model.load` and as TF Serving loads it."""
    return check_upload(directory)


def _export_keras(model: Any, export_dir: str) -> tuple[list[Any], list[str]]:
    """Write a SavedModel whose `serving_default` calls the model; (input specs, output names).

    What is saved is a bare tf.Module holding the model's tf.Variables (plus its lookup tables,
    if any) and the traced serving function, the shape of archive Keras' own `model.export`
    writes (variables + `tf.function(autograph=False)`). Not the Keras object itself:
    `tf.saved_model.save(keras_model)` takes twice as long (walking and serialising the
    object graph) and its saver_def does not restore the variables, so the TF1-style loader
    TF Serving uses (MetaGraph tagged "serve" + saver_def) fails with "Could not find
    variable" although `tf.saved_model.load` (object graph) works.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise Failure(
            LOAD_FAILED,
            "the model has no defined inputs (build it with keras.Input)",
            step="no_inputs",
        )
    specs = [
        tf.TensorSpec(tuple(t.shape), tf.as_dtype(t.dtype), name=_safe_name(t.name, f"input_{i}"))
        for i, t in enumerate(inputs)
    ]
    output_names = [_safe_name(n, f"output_{i}") for i, n in enumerate(_output_names(model))]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return _named(_call(model, list(args)), output_names)

    concrete = serve.get_concrete_function()
    variables = [getattr(v, "value", None) for v in model.variables]
    if not all(isinstance(v, tf.Variable) for v in variables):
        raise Failure(
            LOAD_FAILED, "a model variable is not a TensorFlow variable", step="variables"
        )
    root = tf.Module()
    root.model_variables = variables
    root.serve = concrete
    # tf.saved_model.save, not model.export(): export writes every weight twice (keras#23553).
    try:
        tf.saved_model.save(root, export_dir, signatures={"serving_default": concrete})
        return specs, output_names
    except (Failure, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 typically an untracked lookup table: retry below
        print(
            f"bare-module export: tracking the model's resources ({exc!r})"[:500], file=sys.stderr
        )
        shutil.rmtree(export_dir, ignore_errors=True)
    # What Keras' ExportArchive does for lookup layers: track every TrackableResource (hash
    # tables) reachable from the model. Only on this path: the walk costs ~50 ms.
    root.resources = [
        t for t in tf.train.TrackableView(model).descendants() if isinstance(t, TrackableResource)
    ]
    try:
        tf.saved_model.save(root, export_dir, signatures={"serving_default": concrete})
    except (Failure, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 not the Keras object instead: see the docstring
        shutil.rmtree(export_dir, ignore_errors=True)
        raise Failure(
            LOAD_FAILED,
            f"could not export a serving SavedModel: {str(exc)[:1000]}",
            step="export",
            error=type(exc).__name__,
        ) from None
    return specs, output_names


def _named(outputs: Any, output_names: list[str]) -> dict[str, Any]:
    flat = tf.nest.flatten(outputs)
    names = output_names if len(output_names) == len(flat) else []
    names = names or [f"output_{i}" for i in range(len(flat))]
    return dict(zip(names, flat, strict=True))


def _call(model: Any, args: list[Any]) -> Any:
    """Call the model on its flat inputs (`model.inputs` order) in the structure it was built on:
    a model built on a dict of inputs (KerasHub's: token_ids, padding_mask, ...) takes that dict,
    and `model.inputs` is its flattening, so packing restores it."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        import keras

        return model(keras.tree.pack_sequence_as(struct, args), training=False)
    return model(args if len(args) > 1 else args[0], training=False)


def _keras_reference(model: Any, specs: list[Any], output_names: list[str]) -> Reference | None:
    """Call the Keras model (eagerly: not the traced graph that was exported) on the seeded
    sample of its declared inputs (`feeds.sample`); None when no sample can be made, or when a
    model with a string input does not take short ASCII text (the smoke test says so)."""
    by_name = {s.name: s for s in specs}
    if skip_reason(by_name):
        return None  # the smoke test says why; nothing to synthesise a sample from
    feed = feeds.sample(by_name)
    args = [tf.constant(feed[s.name]) for s in specs]
    try:
        outputs = _named(_call(model, args), output_names)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 the model's own failure on a valid input
        text = f"Keras model on the test sample: {type(exc).__name__}: {exc}"[:2000]
        if feeds.string_input(by_name):
            print(text, file=sys.stderr)
            return None
        raise Failure("smoke.sample_failed", text, error=type(exc).__name__) from None
    half = any(str(d) in ("float16", "bfloat16") for d in _dtypes(model))
    # The exported graph may fuse ops (MatMul+BiasAdd): float32 agrees to ~1e-6, but a 16-bit
    # float layer can differ by an ulp of its dtype (2**-8 for bfloat16) after rounding.
    return Reference(feed, {k: np.asarray(v) for k, v in outputs.items()}, 5e-2 if half else 1e-3)


def _dtypes(layer: Any) -> set[str]:
    """Variable and compute dtypes of a layer and every layer nested in it."""
    found = {str(v.dtype) for v in getattr(layer, "weights", ())}
    found.add(str(getattr(layer, "compute_dtype", "")))
    for inner in getattr(layer, "layers", ()):
        found |= _dtypes(inner)
    return found


def _output_names(model: Any) -> list[str]:
    names = getattr(model, "output_names", None)
    return [str(n) for n in names] if names else []


def _safe_name(name: Any, default: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name or ""))
    return text if re.match(r"^[A-Za-z]", text) else default
