"""The words a rejection carries into the record and the notification (parent side; no TensorFlow).

Every message here is composed by our code: a fixed template per reason code, filled only with
facts the worker computed and this module re-checks — names that pass `_NAME` (signature inputs
and outputs, error classes), shapes, counts, and words from the fixed vocabularies below. The
worker's free text (which can quote TensorFlow, and through it the model: a file an op read, a
layer's name, a tensor's value) never gets here; `validator` logs it for operators.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,63}$")
_CODE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}$")
_DTYPE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
_MAX_LIST = 16

_VOCABULARY: dict[str, dict[str, str]] = {
    "step": {
        "import": "while starting TensorFlow",
        "load": "while loading the model",
        "no_inputs": "the model has no defined inputs (build it with keras.Input)",
        "variables": "a model variable is not a TensorFlow variable",
        "export": "writing the serving SavedModel export failed",
        "reference": "calling the Keras model on the test sample failed",
    },
    "cause": {
        "missing_variable": (
            'restoring the variables through its saver failed: "Could not find variable"'
        ),
        "restore": "loading the 'serve' MetaGraph or restoring its variables failed",
        "run": "running serving_default failed",
        "differs": (
            "its outputs differ from tf.saved_model.load's for the same input: the 'serve' "
            "graph does not restore the variables"
        ),
    },
    "feed": {
        "zeros": "all-zero inputs",
        "sample": "a seeded random sample of the declared inputs",
    },
    "where": {
        "load": "after tf.saved_model.load",
        "serve": "in the 'serve' MetaGraph",
    },
}
_QUOTED_NAMES = ("output", "input")  # of the signature: quoted
_NAMES = ("error", "kind")  # class names: bare
_NAME_LISTS = ("outputs", "expected_outputs", "fields")
_SHAPES = ("shape", "declared", "expected_shape")
_INTS = ("count",)


@dataclass(frozen=True)
class _Reason:
    headline: str  # may use {what}
    details: tuple[str, ...]  # the first whose facts are all present goes in parentheses
    advice: str  # not formatted


_SAMPLE = (
    "a seeded random sample of its declared inputs (floats in [-1, 1], integers 0 or 1, short "
    "ASCII strings, unknown dimensions 2)"
)
_SERVE = (
    "the way TF Serving (Vertex's prebuilt TensorFlow containers) loads it: MetaGraph tagged "
    "'serve', variables restored through its saver"
)
_REASONS: dict[str, _Reason] = {
    "load_failed": _Reason(
        "Loading {what} with safe settings failed",
        ("{step}: {error}", "{step}", "{error}"),
        "Expected a model that loads with keras.saving.load_model(path, safe_mode=True, "
        "compile=False) or tf.saved_model.load without custom code; re-save it with built-in "
        "layers only. A custom object allowed in KERAS_EXTRA_ALLOWED_OBJECTS loads only when the "
        "module that registers it is listed in KERAS_CUSTOM_OBJECT_MODULES.",
    ),
    "smoke.non_finite": _Reason(
        "A test prediction with {what} produced NaN or infinity",
        ("output {output} for {feed}", "for {feed}"),
        "Check the weights (training diverged?) before uploading again.",
    ),
    "smoke.bad_shape": _Reason(
        "A test prediction with {what} returned a different shape than its serving signature "
        "declares",
        ("output {output} has shape {shape}, the signature declares {declared}", "output {output}"),
        "Re-export with a signature that matches the outputs.",
    ),
    "smoke.failed": _Reason(
        "A test prediction with {what} on all-zero inputs of its declared shapes failed",
        ("{error}",),
        "A served model must accept any input its signature declares; check it on zeros before "
        "uploading again.",
    ),
    "smoke.sample_failed": _Reason(
        "A test prediction with {what} failed on " + _SAMPLE,
        ("{error}",),
        "A served model must accept any input its signature declares: a graph that works on "
        "zeros only (an assertion on the input, an index taken from it) fails real requests.",
    ),
    "export.mismatch": _Reason(
        "The SavedModel exported from {what} does not reproduce the Keras model's outputs on "
        "the same input",
        (
            "output {output}: shape {shape}, expected {expected_shape}",
            "outputs {outputs} where {expected_outputs} were expected",
            "output {output} differs",
        ),
        "It would not serve the model that was uploaded. Re-save the model with built-in layers "
        "only, or upload a SavedModel instead.",
    ),
    "savedmodel.not_servable": _Reason(
        "{what} loads with tf.saved_model.load but not " + _SERVE,
        ("{cause}; output {output}", "{cause}: {error}", "{cause}", "{error}"),
        "Every prediction would fail. A Keras 3 model saved with tf.saved_model.save(model) does "
        "this: export it with model.export(dir) instead, or upload the .keras file and let the "
        "registrar export it.",
    ),
    "savedmodel.serving_mismatch": _Reason(
        "{what} served " + _SERVE + ", does not give tf.saved_model.load's outputs on " + _SAMPLE,
        (
            "output {output}: shape {shape}, expected {expected_shape}",
            "outputs {outputs} where {expected_outputs} were expected",
            "output {output} differs",
            "the 'serve' graph failed: {error}",
        ),
        "Vertex would serve other predictions than the model you tested. Export with "
        "model.export(dir) (Keras) or tf.saved_model.save with an explicit serving signature, "
        "without randomness or Python-side state in the serving function.",
    ),
    "savedmodel.missing_serving_default": _Reason(
        "{what} has no usable 'serving_default' signature",
        ("{where}",),
        "Export with tf.saved_model.save(model, dir, signatures={'serving_default': f}).",
    ),
    "savedmodel.bad_fingerprint": _Reason(
        "The fingerprint.pb of {what} does not parse",
        (),
        "Upload the whole SavedModel directory again, as TensorFlow wrote it.",
    ),
    "savedmodel.fingerprint_mismatch": _Reason(
        "The fingerprint.pb of {what} does not match its files",
        ("{fields} differ",),
        "The directory mixes files of two different saves (e.g. an overwrite in progress). "
        "Upload the whole SavedModel again.",
    ),
    "sandbox.out_of_memory": _Reason(
        "The sandboxed loader ran out of memory with {what}",
        ("{step}",),
        "Use a larger instance (VALIDATION_MEMORY_MB) or a smaller model.",
    ),
    "sandbox.bad_request": _Reason(
        "The sandboxed loader did not understand the request for {what}",
        (),
        "This is a fault of the registrar, not of the upload: report it to its operators.",
    ),
}
_GENERIC = _Reason(
    "{what} failed the sandboxed check {code}",
    ("{error}",),
    "Check the model against the README's validation steps before uploading again.",
)
_LOG_HINT = "TensorFlow's own error text for this rejection is in the function's log."


def known(code: str) -> bool:
    return code in _REASONS


def compose(code: str, what: str, facts: Any, *, logged: bool = False) -> tuple[str, str]:
    """(reason code, message) for the record. A code that is not well-formed becomes
    `load_failed`; `logged`: the worker's own text went to the log (the message says where)."""
    if not isinstance(code, str) or not _CODE.match(code) or len(code) > 64:
        code = "load_failed"
    reason = _REASONS.get(code, _GENERIC)
    clean = _clean(facts)
    text = reason.headline.format(what=what, code=code)
    text = text[:1].upper() + text[1:]
    for template in reason.details:
        fields = re.findall(r"{(\w+)}", template)
        if all(f in clean for f in fields):
            text += f" ({template.format(**clean)})"
            break
    text += ". " + reason.advice
    if logged:
        text += " " + _LOG_HINT
    return code, text


def smoke_text(answer: dict[str, Any]) -> str:
    """The record's `smoke_test`: "passed", or "skipped: <why>" in our words."""
    if answer.get("smoke") == "passed":
        return "passed"
    skip = answer.get("skip") if isinstance(answer.get("skip"), dict) else {}
    clean = _clean(skip)
    name = f"input {clean['input']}" if "input" in clean else "an input"
    why = {
        "composite": f"{name} is a {clean.get('kind', 'composite tensor')}",
        "dtype": f"{name} has dtype {clean.get('dtype', '(not synthesisable)')}",
        "unknown_rank": f"{name} has unknown rank",
        "string_rejected": (
            f"{name} is a string and the model did not accept short ASCII text "
            "(e.g. it expects encoded images)"
        ),
    }.get(str(skip.get("reason")), "the inputs cannot be synthesised")
    return f"skipped: {why}"


def _clean(facts: Any) -> dict[str, str]:
    """Facts rendered for a template; any that break the rules are left out."""
    if not isinstance(facts, dict):
        return {}
    clean: dict[str, str] = {}
    for key, value in facts.items():
        if key in _QUOTED_NAMES and _is_name(value):
            clean[key] = f"'{value}'"
        elif key in _NAMES and _is_name(value):
            clean[key] = str(value)
        elif key in _NAME_LISTS and _is_list(value) and all(_is_name(v) for v in value):
            clean[key] = "[" + ", ".join(f"'{v}'" for v in value) + "]"
        elif key in _SHAPES and _is_list(value) and all(_is_dim(d) for d in value):
            clean[key] = "[" + ", ".join("?" if d is None else str(d) for d in value) + "]"
        elif key in _INTS and isinstance(value, int) and not isinstance(value, bool):
            clean[key] = str(value)
        elif key == "dtype" and isinstance(value, str) and _DTYPE.match(value):
            clean[key] = value
        elif key in _VOCABULARY and isinstance(value, str) and value in _VOCABULARY[key]:
            clean[key] = _VOCABULARY[key][value]
    return clean


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(_NAME.match(value))


def _is_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= _MAX_LIST


def _is_dim(value: Any) -> bool:
    return value is None or (
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40
    )
