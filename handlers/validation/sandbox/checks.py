"""Checks on a SavedModel inside the sandboxed worker (imports TensorFlow: worker only).

Two ways to load a SavedModel, and which one is the truth:
- `tf.saved_model.load` restores variables through the object graph (TF2);
- TF Serving, which Vertex's prebuilt TensorFlow containers run, loads the MetaGraph tagged
  "serve" into a session and restores variables through its saver_def (`_serving_session`).
A SavedModel can pass the first and fail every prediction in the second with "Could not find
variable": a Keras 3 model saved with `tf.saved_model.save(model)` does (tensorflow/serving#2250).
So what is registered is always run the serving way, on all-zero inputs and on a seeded random
sample of the declared inputs (`feeds`): a graph that works on zeros only fails real requests.

A `Failure` carries typed facts (output names, shapes) for the record and, as its text, our
account for the log, which may quote TensorFlow's error (and so the model): see `protocol`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from . import feeds
from .protocol import LOAD_FAILED, Failure


@dataclass
class Reference:
    """Outputs a SavedModel must reproduce for `feed` (e.g. the Keras model's, for its export)."""

    feed: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    tolerance: float


def check_upload(directory: str) -> dict[str, Any]:
    """An uploaded SavedModel: `tf.saved_model.load` and test predictions on all-zero inputs and
    on a seeded random sample, then served the TF Serving way on the same two feeds, which must
    give the same outputs: on zeros, or the variables were not restored
    (`savedmodel.not_servable`); on the sample, or the served graph computes something else than
    what was tested (`savedmodel.serving_mismatch`). The two loads are sequential: never two
    loaded copies at once."""
    _check_fingerprint(directory)
    try:
        loaded = tf.saved_model.load(directory)
    except (Failure, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 the loader's text is for the log only
        raise Failure(LOAD_FAILED, _first_cause(exc), step="load", error=_kind(exc)) from None
    if "serving_default" not in loaded.signatures:
        raise Failure(
            "savedmodel.missing_serving_default", "no serving_default after load", where="load"
        )
    fn = loaded.signatures["serving_default"]
    inputs, outputs = fn.structured_input_signature[1], fn.structured_outputs
    result = _describe(inputs, outputs)
    skip = skip_reason(inputs)
    checks: list[tuple[Reference, str]] = []
    if skip is None:
        runs = (
            ("zeros", feeds.zeros(inputs), "smoke.failed", "savedmodel.not_servable"),
            ("sample", feeds.sample(inputs), "smoke.sample_failed", "savedmodel.serving_mismatch"),
        )
        try:
            for which, feed, fails, differs in runs:
                got = _predict(fn, feed, fails)
                _check_smoke(got, outputs, feed=which)
                checks.append((Reference(feed, got, 1e-3), differs))
                if which == "sample":
                    _note_non_finite(result, got)
        except Failure as exc:
            skip = _string_skip(inputs, exc)
            checks = []
    _smoke(result, skip)
    del loaded, fn
    gc.collect()
    with _serving_session(directory) as served:
        for reference, code in checks:
            _compare(served.run(reference.feed, code), reference, code, _DIFFERS[code])
    return result


_DIFFERS = {
    "savedmodel.not_servable": "differs from tf.saved_model.load's for the same input: the "
    "'serve' graph does not restore the variables",
    "savedmodel.serving_mismatch": "differs from tf.saved_model.load's on the same random sample",
}


def _predict(fn: Any, feed: dict[str, np.ndarray], code: str) -> dict[str, np.ndarray]:
    """serving_default of `tf.saved_model.load`, called on `feed`; an error is `code`."""
    try:
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feed.items()}).items()}
    except (Failure, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 InvalidArgumentError & co: the model's own failure
        raise Failure(code, _first_cause(exc), error=_kind(exc)) from None


def _string_skip(inputs: dict[str, Any], exc: Failure) -> dict[str, Any]:
    """A model with a string input that fails on empty or short ASCII strings is let through as
    before (smoke skipped): it may expect encoded images. Any other failure stands."""
    name = feeds.string_input(inputs)
    failed_on_input = exc.code in ("smoke.failed", "smoke.sample_failed") or (
        exc.code == "savedmodel.not_servable" and exc.facts.get("cause") == "run"
    )
    if name is None or not failed_on_input:
        raise exc
    print(f"string input {name!r}: test prediction failed: {exc}"[:1000], file=sys.stderr)
    return {"reason": "string_rejected", "input": name}


def _smoke(result: dict[str, Any], skip: dict[str, Any] | None) -> None:
    result["smoke"] = "skipped" if skip else "passed"
    if skip:
        result["skip"] = skip


def check_export(directory: str, reference: Reference | None) -> dict[str, Any]:
    """The SavedModel exported from a `.keras`: served the TF Serving way, smoke-tested, and its
    outputs on the reference sample must be the Keras model's (`export.mismatch`)."""
    _check_fingerprint(directory)
    with _serving_session(directory) as served:
        inputs, outputs = served.specs("inputs"), served.specs("outputs")
        result = _describe(inputs, outputs)
        skip = skip_reason(inputs)
        if skip is None:
            try:
                _check_smoke(served.run(feeds.zeros(inputs)), outputs, feed="zeros")
            except Failure as exc:
                skip = _string_skip(inputs, exc)
        if skip is None and reference is None and feeds.string_input(inputs):
            skip = {"reason": "string_rejected", "input": feeds.string_input(inputs)}
        _smoke(result, skip)
        if skip is None and reference is not None:
            _note_non_finite(result, reference.expected)
            _compare(
                served.run(reference.feed, "export.mismatch"),
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

    def run(
        self, feed: dict[str, np.ndarray], code: str = "savedmodel.not_servable"
    ) -> dict[str, np.ndarray]:
        fetches = {k: v.name for k, v in self.signature.outputs.items()}
        try:
            tensors = {self.signature.inputs[k].name: v for k, v in feed.items()}
            return self.session.run(fetches, tensors)
        except Exception as exc:  # noqa: BLE001 OpError, KeyError, ValueError: not servable
            text = _first_cause(exc)
            cause = "missing_variable" if "Could not find variable" in text else "run"
            raise Failure(code, text, cause=cause, error=_kind(exc)) from None


@contextlib.contextmanager
def _serving_session(directory: str) -> Iterator[_Served]:
    """The MetaGraph tagged "serve" in a session, variables restored through its saver_def and
    its init op run: how TF Serving loads a SavedModel."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        try:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], directory)
        except Exception as exc:  # noqa: BLE001 restore or init failed: not servable
            text = _first_cause(exc)
            cause = "missing_variable" if "Could not find variable" in text else "restore"
            raise Failure("savedmodel.not_servable", text, cause=cause, error=_kind(exc)) from None
        if "serving_default" not in meta.signature_def:
            raise Failure(
                "savedmodel.missing_serving_default",
                "the 'serve' MetaGraph has no serving_default",
                where="serve",
            )
        yield _Served(session, meta.signature_def["serving_default"])


def _spec(info: Any) -> Any:
    """A TensorSpec for a dense TensorInfo; sparse/composite ones stay TensorInfo (no smoke)."""
    if info.WhichOneof("encoding") != "name":
        return info
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else [d.size if d.size >= 0 else None for d in shape.dim]
    return tf.TensorSpec(dims, tf.as_dtype(info.dtype))


def _check_smoke(
    outputs: dict[str, np.ndarray], specs: dict[str, Any], *, feed: str = "zeros"
) -> None:
    """Outputs of a test prediction: of the declared shapes; finite for all-zero inputs (a
    random sample may legitimately leave a function's domain, e.g. log of a negative)."""
    for name, array in outputs.items():
        spec = specs.get(name)
        if isinstance(spec, tf.TensorSpec) and not spec.shape.is_compatible_with(array.shape):
            raise Failure(
                "smoke.bad_shape",
                f"output {name!r} has shape {list(array.shape)} but the signature declares "
                f"{spec.shape.as_list()} ({feed})",
                output=name,
                shape=list(array.shape),
                declared=spec.shape.as_list(),
            )
        if feed == "zeros" and array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise Failure(
                "smoke.non_finite",
                f"output {name!r} contains NaN or infinity for all-zero inputs",
                output=name,
                feed=feed,
            )


def _note_non_finite(result: dict[str, Any], outputs: dict[str, np.ndarray]) -> None:
    """Outputs with NaN or infinity on the seeded random sample: not a rejection (the sample may
    leave a legitimate model's domain, e.g. log of a negative), but the record and the version
    say so (`sample_non_finite`: output names)."""
    names = sorted(
        name
        for name, array in outputs.items()
        if np.asarray(array).dtype.kind in "fc" and not np.all(np.isfinite(array))
    )
    if names:
        result["sample_non_finite"] = names


def _compare(actual: dict[str, np.ndarray], reference: Reference, code: str, differs: str) -> None:
    if sorted(actual) != sorted(reference.expected):
        raise Failure(
            code,
            f"outputs {sorted(actual)} where {sorted(reference.expected)} were expected",
            outputs=sorted(actual),
            expected_outputs=sorted(reference.expected),
        )
    for name, expected in reference.expected.items():
        got = actual[name]
        if got.shape != expected.shape:
            raise Failure(
                code,
                f"output {name!r}: shape {list(got.shape)}, expected {list(expected.shape)}",
                output=name,
                shape=list(got.shape),
                expected_shape=list(expected.shape),
            )
        if expected.dtype.kind not in "fc":
            same = np.array_equal(got, expected)
        else:
            finite = np.abs(expected[np.isfinite(expected)].astype(np.float64))
            scale = float(finite.max()) if finite.size else 1.0
            atol = reference.tolerance * max(scale, 1e-6)
            same = np.allclose(got, expected, rtol=reference.tolerance, atol=atol, equal_nan=True)
        if not same:
            cause = {"cause": "differs"} if code == "savedmodel.not_servable" else {}
            raise Failure(code, f"output {name!r} {differs}", output=name, **cause)


def skip_reason(specs: dict[str, Any]) -> dict[str, Any] | None:
    """Why no test input can be made for these inputs (None: one can), as facts."""
    for name, spec in specs.items():
        if not isinstance(spec, tf.TensorSpec):
            return {"reason": "composite", "input": name, "kind": type(spec).__name__}
        if spec.dtype in (tf.variant, tf.resource):
            return {"reason": "dtype", "input": name, "dtype": spec.dtype.name}
        if spec.shape.rank is None:
            return {"reason": "unknown_rank", "input": name}
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


def _kind(exc: BaseException) -> str:
    return type(exc).__name__


def _first_cause(exc: BaseException) -> str:
    """The line of a TF error that says what went wrong (not "Graph execution error:" or the
    node trace), e.g. "Could not find variable dense/bias. This could mean ..."."""
    noise = ("Graph execution error", "Detected at node", "File ", "[[", "Debug info", "<stack")
    for line in str(exc).splitlines():
        line = line.strip()
        if line and not line.startswith(noise):
            return line[:1000]
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
            fields=mismatched,
        )
