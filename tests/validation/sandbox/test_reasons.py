"""Records and notifications carry our words, not the loader's: a rejection's message is a fixed
template per reason code with facts our code computed and re-checked; what TensorFlow said (which
can quote the model: a layer name, a constant, a file an op read) goes to the function's log."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.errors import Rejected
from handlers.validation.sandbox import reasons
from handlers.validation.validator import Validator
from tests.validation import corpus

CANARY = "canaryQ7x"  # a valid layer/tensor name, so only our rules can keep it out


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage() + json.dumps(getattr(record, "json_fields", {})))


@pytest.fixture
def operator_log() -> Iterator[_Capture]:
    """Log lines of the validator and the sandbox (the function's log, for operators)."""
    capture = _Capture()
    logger = logging.getLogger("handlers.validation")
    logger.addHandler(capture)
    yield capture
    logger.removeHandler(capture)


def _rejected(call: Any) -> Rejected:
    with pytest.raises(Rejected) as info:
        call()
    return info.value


def test_keras_load_error_naming_a_layer_stays_in_the_log(validator, tmp_path, operator_log):
    """Keras' error names the layer (uploader-chosen text); the record does not."""
    import keras

    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, name=CANARY)(x))
    model.save(tmp_path / "good.keras")
    config = json.loads(corpus.read_member(tmp_path / "good.keras", "config.json"))
    bad = corpus.write_keras(tmp_path / "bad.keras", config)  # weights without the layer's
    error = _rejected(lambda: validator.validate_keras(bad, tmp_path / "work"))
    assert error.code == "load_failed"
    assert CANARY not in str(error)
    assert str(error).startswith("Loading the .keras file bad.keras with safe settings failed")
    assert "function's log" in str(error)
    assert any(CANARY in line and "load_failed" in line for line in operator_log.lines)


def test_savedmodel_error_quoting_a_constant_stays_in_the_log(validator, tmp_path, operator_log):
    """A graph that parses text as a number gets that text echoed in TensorFlow's error (with
    ReadFile, a file's content: the static op check stops that op, not the echo)."""
    import tensorflow as tf

    secret = f"{CANARY}-file-content"
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(x: Any) -> Any:
        return {"y": x + tf.strings.to_number(tf.constant(secret))}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": serve})
    error = _rejected(lambda: validator.validate_saved_model(tmp_path / "sm", tmp_path / "work"))
    assert error.code == "smoke.failed"
    assert CANARY not in str(error) and "InvalidArgumentError" in str(error)
    assert any(secret in line for line in operator_log.lines)


def test_crash_output_stays_in_the_log(validator, operator_log):
    validator.sandbox.request({"op": "ping"}, what="ping")
    error = _rejected(
        lambda: validator._run({"op": "test", "action": "segfault", "say": CANARY}, what="x")
    )
    assert error.code == "sandbox.crash"
    assert CANARY not in str(error)
    assert any(CANARY in line for line in operator_log.lines)


class _Answering:
    """A worker that answers what a compromised one could: text in every field."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.layers: dict[str, Any] = {}

    def request(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        return self.answer


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"code": "smoke.bad_shape", "message": CANARY, "facts": {"output": f"y {CANARY}"}}, None),
        ({"code": "export.mismatch", "facts": {"output": "y", "shape": [CANARY]}}, None),
        ({"code": "load_failed", "facts": {"step": CANARY, "error": f"{CANARY}\nx"}}, None),
        ({"code": f"load failed: {CANARY}", "facts": {}}, "load_failed"),
        ({"code": "smoke.non_finite", "facts": {"output": {"nested": CANARY}}}, None),
        ({"code": "savedmodel.not_servable", "facts": {"cause": CANARY}}, None),
        ({"code": "x" * 70, "facts": {}}, "load_failed"),
        ({"code": "sandbox.crash", "facts": {"fields": [CANARY + "!"]}}, None),
    ],
)
def test_worker_answers_cannot_put_text_in_the_record(settings, answer, code, operator_log):
    validator = Validator(settings)
    validator.sandbox = _Answering({"ok": False, **answer})  # type: ignore[assignment]
    error = _rejected(lambda: validator._run({"op": "keras"}, what="m.keras"))
    assert CANARY not in str(error) and "\n" not in str(error)
    assert error.code == (code or answer["code"])


def test_facts_that_pass_our_rules_are_quoted():
    code, text = reasons.compose(
        "smoke.bad_shape",
        "the SavedModel m",
        {"output": "probs", "shape": [1, 5], "declared": [None, 3]},
    )
    assert code == "smoke.bad_shape"
    assert text == (
        "A test prediction with the SavedModel m returned a different shape than its serving "
        "signature declares (output 'probs' has shape [1, 5], the signature declares [?, 3]). "
        "Re-export with a signature that matches the outputs."
    )
    _, text = reasons.compose("savedmodel.fingerprint_mismatch", "m", {"fields": ["a", "b"]})
    assert "(['a', 'b'] differ)" in text


def test_every_known_code_composes_without_facts():
    for code in reasons._REASONS:
        got, text = reasons.compose(code, "the model m", {})
        assert got == code and text[0].isupper() and text.endswith(".")
        assert not re.search(r"{[a-z_]+}", text), text  # no placeholder left unfilled


def test_smoke_skip_text_is_ours():
    assert reasons.smoke_text({"smoke": "passed"}) == "passed"
    skip = {"reason": "dtype", "input": "ids", "dtype": "variant"}
    assert reasons.smoke_text({"smoke": "skipped", "skip": skip}) == (
        "skipped: input 'ids' has dtype variant"
    )
    hostile = {"reason": "dtype", "input": f"{CANARY} x", "dtype": f"{CANARY} y"}
    text = reasons.smoke_text({"smoke": "skipped", "skip": hostile})
    assert text == "skipped: an input has dtype (not synthesisable)"
    assert reasons.smoke_text({"smoke": f"passed {CANARY}"}).startswith("skipped:")


def test_operator_detail_is_bounded(settings, operator_log):
    validator = Validator(settings)
    answer = {"ok": False, "code": "load_failed", "message": "x" * 10_000, "facts": {}}
    validator.sandbox = _Answering(answer)  # type: ignore[assignment]
    _rejected(lambda: validator._run({"op": "keras"}, what="m.keras"))
    line = next(line for line in operator_log.lines if "rejected in the sandbox" in line)
    assert line.count("x") < 2 * 2048 + 200


def test_record_paths_hold_only_composed_text(tmp_path: Path):
    """Rejected is the only thing the pipeline records (reason.code, str(exc)): the message is
    the composition above — nothing in between adds the worker's text."""
    answer = {"ok": False, "code": "smoke.failed", "message": CANARY, "facts": {"error": "E"}}
    validator = Validator.__new__(Validator)
    validator.sandbox = _Answering(answer)  # type: ignore[assignment]
    error = _rejected(lambda: validator._run({}, what="the SavedModel m"))
    assert (
        str(error)
        == reasons.compose("smoke.failed", "the SavedModel m", {"error": "E"}, logged=True)[1]
    )
