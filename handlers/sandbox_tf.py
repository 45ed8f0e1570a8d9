"""TensorFlow work done inside the sandboxed worker only (imported by `handlers.sandbox_worker`).

Never import this module in the function process: it imports TensorFlow and Keras at import time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shutil
import sys
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np
import tensorflow as tf
from tensorflow.saved_model.experimental import TrackableResource

from handlers.sandbox_keras_load import load_keras_model
from handlers.sandbox_worker import Failure


def load_keras(path: str, export_dir: str, *, release_source: bool = False) -> dict[str, Any]:
    """Load a `.keras` file safely, export a serving SavedModel, reload that, smoke-test it and
    compare its outputs with the Keras model's on a deterministic sample.

    The Keras model is released before the export is reloaded, so the two never coexist in memory
    (only the sample and the Keras outputs for it, batch 1, are kept for the comparison).
    `release_source` deletes `path` once the weights are in memory (the caller's throwaway copy,
    RAM on Cloud Functions), so it does not sit next to the export being written.
    """
    model = load_keras_model(path)
    if release_source:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    specs, output_names = _export_keras(model, export_dir)
    check = _keras_reference(model, specs, output_names)
    del model
    gc.collect()  # Keras layers and tf.functions hold reference cycles: free the weights now
    return _load_and_check(export_dir, check)


def load_saved_model(directory: str) -> dict[str, Any]:
    """`tf.saved_model.load` the directory and call serving_default once with zeros; then load
    and run it again the way TF Serving does (`_check_servable`)."""
    return _load_and_check(directory, None, servable=True)


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
        raise Failure("load_failed", "the model has no defined inputs (build it with keras.Input)")
    specs = [
        tf.TensorSpec(tuple(t.shape), tf.as_dtype(t.dtype), name=_safe_name(t.name, f"input_{i}"))
        for i, t in enumerate(inputs)
    ]
    output_names = [_safe_name(n, f"output_{i}") for i, n in enumerate(_output_names(model))]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args: Any) -> dict[str, Any]:
        return _named(model(list(args) if len(args) > 1 else args[0], training=False), output_names)

    concrete = serve.get_concrete_function()
    variables = [getattr(v, "value", None) for v in model.variables]
    if not all(isinstance(v, tf.Variable) for v in variables):
        raise Failure("load_failed", "a model variable is not a TensorFlow variable")
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
            "load_failed", f"could not export a serving SavedModel: {str(exc)[:400]}"
        ) from None
    return specs, output_names


def _named(outputs: Any, output_names: list[str]) -> dict[str, Any]:
    flat = tf.nest.flatten(outputs)
    names = output_names if len(output_names) == len(flat) else []
    names = names or [f"output_{i}" for i in range(len(flat))]
    return dict(zip(names, flat, strict=True))


@dataclass
class _Reference:
    """The Keras model's outputs for `feed`, which the reloaded export must reproduce."""

    feed: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    tolerance: float


def _keras_reference(model: Any, specs: list[Any], output_names: list[str]) -> _Reference | None:
    """Call the Keras model (eagerly: not the traced graph that was exported) on a seeded sample
    of the declared inputs, batch 1: floats ~N(0, 1), other dtypes zeros (valid for lookups)."""
    if _skip_reason({s.name: s for s in specs}):
        return None  # the smoke test says why; nothing to synthesise a sample from
    rng = np.random.default_rng(20260101)
    feed: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = [1 if d is None else d for d in spec.shape.as_list()]
        if spec.dtype.is_floating:
            feed[spec.name] = rng.standard_normal(shape).astype(spec.dtype.as_numpy_dtype)
        else:
            feed[spec.name] = np.zeros(shape, spec.dtype.as_numpy_dtype)
    args = [tf.constant(feed[s.name]) for s in specs]
    outputs = _named(model(args if len(args) > 1 else args[0], training=False), output_names)
    half = any(str(d) in ("float16", "bfloat16") for d in _dtypes(model))
    # The exported graph may fuse ops (MatMul+BiasAdd): float32 agrees to ~1e-6, but a 16-bit
    # float layer can differ by an ulp of its dtype (2**-8 for bfloat16) after rounding.
    return _Reference(feed, {k: np.asarray(v) for k, v in outputs.items()}, 5e-2 if half else 1e-3)


def _dtypes(layer: Any) -> set[str]:
    """Variable and compute dtypes of a layer and every layer nested in it."""
    found = {str(v.dtype) for v in getattr(layer, "weights", ())}
    found.add(str(getattr(layer, "compute_dtype", "")))
    for inner in getattr(layer, "layers", ()):
        found |= _dtypes(inner)
    return found


def _load_and_check(
    directory: str, reference: _Reference | None, *, servable: bool = False
) -> dict[str, Any]:
    result, smoke = _load_and_smoke(directory, reference)
    if servable:
        gc.collect()  # the TF2 object graph is gone: never two loaded copies at once
        _check_servable(directory, smoke)
    return result


def _load_and_smoke(
    directory: str, reference: _Reference | None
) -> tuple[dict[str, Any], _Smoke | None]:
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
        return result, None
    smoke = _smoke(fn, input_specs, output_specs)
    result["smoke"] = "passed"
    if reference is not None:
        _compare(fn, reference)
    return result, smoke


@dataclass
class _Smoke:
    """The smoke test's all-zero feed and the outputs `tf.saved_model.load` gave for it."""

    feed: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def _smoke(fn: Any, input_specs: dict[str, Any], output_specs: dict[str, Any]) -> _Smoke:
    """Zeros of the declared shapes, batch 1: finite outputs of the declared shapes."""
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
    return _Smoke(
        {k: v.numpy() for k, v in feed.items()}, {k: v.numpy() for k, v in outputs.items()}
    )


def _check_servable(directory: str, smoke: _Smoke | None) -> None:
    """Load the MetaGraph tagged "serve" into a session, restore the variables through its
    saver_def and run its init op, then run serving_default: what TF Serving (Vertex's prebuilt
    TF containers) does. `tf.saved_model.load` restores through the object graph instead, so a
    SavedModel can pass it and still fail every prediction in TF Serving ("Could not find
    variable", e.g. `tf.saved_model.save(keras_model)` with Keras 3). The outputs for the smoke
    feed must match `tf.saved_model.load`'s: restored, not freshly initialised, weights."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        try:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], directory)
            if smoke is None:
                return  # inputs cannot be synthesised: restore + init ops ran, that is all
            signature = meta.signature_def["serving_default"]
            fetches = {k: v.name for k, v in signature.outputs.items()}
            feeds = {signature.inputs[k].name: v for k, v in smoke.feed.items()}
            served = session.run(fetches, feeds)
        except Failure:
            raise
        except Exception as exc:  # noqa: BLE001 OpError, KeyError, ValueError: all "not servable"
            raise Failure("savedmodel.not_servable", _first_cause(exc)) from None
    for name, expected in smoke.outputs.items():
        got = served.get(name)
        if got is None or got.shape != expected.shape:
            raise Failure(
                "savedmodel.not_servable", f"output {name!r} is missing or has another shape"
            )
        if expected.dtype.kind in "fc":
            same = np.allclose(got, expected, rtol=1e-3, atol=1e-3, equal_nan=True)
        else:
            same = np.array_equal(got, expected)
        if not same:
            raise Failure(
                "savedmodel.not_servable",
                f"output {name!r} differs from tf.saved_model.load's for the same input: the "
                "variables are not restored by the 'serve' graph",
            )


def _compare(fn: Any, reference: _Reference) -> None:
    """The reloaded export must give the Keras model's outputs on the reference sample."""
    actual = {
        k: v.numpy()
        for k, v in fn(**{k: tf.constant(v) for k, v in reference.feed.items()}).items()
    }
    if sorted(actual) != sorted(reference.expected):
        raise Failure(
            "export.mismatch",
            f"the export's outputs {sorted(actual)} are not the model's {sorted(reference.expected)}",
        )
    for name, expected in reference.expected.items():
        got = actual[name]
        if got.shape != expected.shape:
            raise Failure(
                "export.mismatch",
                f"output {name!r}: shape {list(got.shape)} after export, {list(expected.shape)} "
                "in Keras",
            )
        if expected.dtype.kind not in "fc":
            same = np.array_equal(got, expected)
        else:
            finite = np.abs(expected[np.isfinite(expected)].astype(np.float64))
            scale = float(finite.max()) if finite.size else 1.0
            atol = reference.tolerance * max(scale, 1e-6)
            same = np.allclose(got, expected, rtol=reference.tolerance, atol=atol, equal_nan=True)
        if not same:
            raise Failure(
                "export.mismatch",
                f"output {name!r} of the exported SavedModel differs from the Keras model's on "
                "the same input",
            )


def _first_cause(exc: BaseException) -> str:
    """The line of a TF error that says what went wrong (not "Graph execution error:" or the
    node trace), e.g. "Could not find variable dense/bias. This could mean ..."."""
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "Debug info")
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(noise):
            return line[:300]
    return type(exc).__name__


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
