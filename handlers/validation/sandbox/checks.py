"""Checks on a SavedModel inside the sandboxed worker (imports TensorFlow: worker only).

Two ways to load a SavedModel, and which one is the truth:
- `tf.saved_model.load` restores variables through the object graph (TF2);
- TF Serving, which Vertex's prebuilt TensorFlow containers run, loads the MetaGraph tagged
  "serve" into a session and restores variables through its saver_def (`_serving_session`).
A SavedModel can pass the first and fail every prediction in the second with "Could not find
variable": a Keras 3 model saved with `tf.saved_model.save(model)` does (tensorflow/serving#2250).
So what is registered is always run the serving way.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from handlers.validation.sandbox.protocol import Failure


@dataclass
class Reference:
    """Outputs a SavedModel must reproduce for `feed` (e.g. the Keras model's, for its export)."""

    feed: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    tolerance: float


def check_upload(directory: str) -> dict[str, Any]:
    """An uploaded SavedModel: `tf.saved_model.load` + smoke test, then served the TF Serving
    way on the same all-zero feed, which must give the same outputs (restored weights, not
    initialised ones). The two loads are sequential: never two loaded copies at once."""
    _check_fingerprint(directory)
    loaded = tf.saved_model.load(directory)
    if "serving_default" not in loaded.signatures:
        raise Failure("savedmodel.missing_serving_default", "no serving_default after load")
    fn = loaded.signatures["serving_default"]
    inputs, outputs = fn.structured_input_signature[1], fn.structured_outputs
    result = _describe(inputs, outputs)
    skip = skip_reason(inputs)
    reference = None
    if skip:
        result["smoke"] = f"skipped: {skip}"
    else:
        feed = _zeros(inputs)
        got = {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}
        _check_smoke(got, outputs)
        result["smoke"] = "passed"
        reference = Reference(feed, got, 1e-3)
    del loaded, fn
    gc.collect()
    with _serving_session(directory) as served:
        if reference is not None:
            _compare(
                served.run(reference.feed),
                reference,
                "savedmodel.not_servable",
                "differs from tf.saved_model.load's for the same input: the 'serve' graph does "
                "not restore the variables",
            )
    return result


def check_export(directory: str, reference: Reference | None) -> dict[str, Any]:
    """The SavedModel exported from a `.keras`: served the TF Serving way, smoke-tested, and its
    outputs on the reference sample must be the Keras model's (`export.mismatch`)."""
    _check_fingerprint(directory)
    with _serving_session(directory) as served:
        inputs, outputs = served.specs("inputs"), served.specs("outputs")
        result = _describe(inputs, outputs)
        skip = skip_reason(inputs)
        if skip:
            result["smoke"] = f"skipped: {skip}"
            return result
        _check_smoke(served.run(_zeros(inputs)), outputs)
        result["smoke"] = "passed"
        if reference is not None:
            _compare(
                served.run(reference.feed),
                reference,
                "export.mismatch",
                "of the exported SavedModel differs from the Keras model's on the same input",
            )
    return result


@dataclass
class _Served:
    session: Any
    signature: Any  # SignatureDef of serving_default

    def specs(self, which: str) -> dict[str, Any]:
        return {k: _spec(v) for k, v in getattr(self.signature, which).items()}

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        fetches = {k: v.name for k, v in self.signature.outputs.items()}
        try:
            feeds = {self.signature.inputs[k].name: v for k, v in feed.items()}
            return self.session.run(fetches, feeds)
        except Exception as exc:  # noqa: BLE001 OpError, KeyError, ValueError: not servable
            raise Failure("savedmodel.not_servable", _first_cause(exc)) from None


@contextlib.contextmanager
def _serving_session(directory: str) -> Iterator[_Served]:
    """The MetaGraph tagged "serve" in a session, variables restored through its saver_def and
    its init op run: how TF Serving loads a SavedModel."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        try:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], directory)
        except Exception as exc:  # noqa: BLE001 restore or init failed: not servable
            raise Failure("savedmodel.not_servable", _first_cause(exc)) from None
        if "serving_default" not in meta.signature_def:
            raise Failure(
                "savedmodel.missing_serving_default", "the 'serve' MetaGraph has no serving_default"
            )
        yield _Served(session, meta.signature_def["serving_default"])


def _spec(info: Any) -> Any:
    """A TensorSpec for a dense TensorInfo; sparse/composite ones stay TensorInfo (no smoke)."""
    if info.WhichOneof("encoding") != "name":
        return info
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else [d.size if d.size >= 0 else None for d in shape.dim]
    return tf.TensorSpec(dims, tf.as_dtype(info.dtype))


def _zeros(inputs: dict[str, Any]) -> dict[str, np.ndarray]:
    """All-zero inputs of the declared shapes, batch 1 (and 1 for any other unknown dimension)."""
    return {
        name: np.zeros(
            [1 if d is None else d for d in spec.shape.as_list()], spec.dtype.as_numpy_dtype
        )
        for name, spec in inputs.items()
    }


def _check_smoke(outputs: dict[str, np.ndarray], specs: dict[str, Any]) -> None:
    """Outputs for the all-zero feed: of the declared shapes, and finite."""
    for name, array in outputs.items():
        spec = specs.get(name)
        if isinstance(spec, tf.TensorSpec) and not spec.shape.is_compatible_with(array.shape):
            raise Failure(
                "smoke.bad_shape",
                f"output {name!r} has shape {list(array.shape)} but the signature declares "
                f"{spec.shape.as_list()}",
            )
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise Failure(
                "smoke.non_finite", f"output {name!r} contains NaN or infinity for all-zero inputs"
            )


def _compare(actual: dict[str, np.ndarray], reference: Reference, code: str, differs: str) -> None:
    if sorted(actual) != sorted(reference.expected):
        raise Failure(
            code, f"outputs {sorted(actual)} where {sorted(reference.expected)} were expected"
        )
    for name, expected in reference.expected.items():
        got = actual[name]
        if got.shape != expected.shape:
            raise Failure(
                code,
                f"output {name!r}: shape {list(got.shape)}, expected {list(expected.shape)}",
            )
        if expected.dtype.kind not in "fc":
            same = np.array_equal(got, expected)
        else:
            finite = np.abs(expected[np.isfinite(expected)].astype(np.float64))
            scale = float(finite.max()) if finite.size else 1.0
            atol = reference.tolerance * max(scale, 1e-6)
            same = np.allclose(got, expected, rtol=reference.tolerance, atol=atol, equal_nan=True)
        if not same:
            raise Failure(code, f"output {name!r} {differs}")


def skip_reason(specs: dict[str, Any]) -> str | None:
    for name, spec in specs.items():
        if not isinstance(spec, tf.TensorSpec):
            return f"input {name!r} is a {type(spec).__name__}"
        if spec.dtype in (tf.string, tf.variant, tf.resource):
            return f"input {name!r} has dtype {spec.dtype.name}"
        if spec.shape.rank is None:
            return f"input {name!r} has unknown rank"
    return None


def _describe(inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    def one(spec: Any) -> dict[str, Any]:
        shape = getattr(spec, "shape", None)
        dims = [] if shape is None or shape.rank is None else shape.as_list()
        dtype = getattr(spec, "dtype", None)
        name = dtype.name if isinstance(dtype, tf.DType) else type(spec).__name__
        return {"dtype": name, "shape": dims}

    return {
        "inputs": [dict(name=k, **one(v)) for k, v in sorted(inputs.items())],
        "outputs": [dict(name=k, **one(v)) for k, v in sorted(outputs.items())],
    }


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
