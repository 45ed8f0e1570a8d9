"""The worker reads only what it needs (Landlock read rules, `confine.read_roots`): canary files
outside those paths — one beside the uploads in a temp dir, one in the project checkout — are
read neither by Python nor by a TensorFlow graph op nor by a Keras layer config that names a
path, and nothing of them reaches the worker's answer (which becomes the record), its log, or
an export. The static scan, which rejects such graphs and configs first, is bypassed here: the
requests go to the sandbox directly, so this is the sandbox's own guarantee.

Controls show each probe does carry a file's contents out when the file is one it may read."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.validation.sandbox import confine
from tests.validation import corpus

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(confine.landlock_abi() < 1, reason="kernel without Landlock")


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Path, str]]]:
    """{where: (path, secret)}: a file in a temp dir beside the uploads, one in the checkout."""
    token = uuid.uuid4().hex
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "secret.txt"
    in_checkout = ROOT / f".read-canary-{token}.txt"
    found = {"temp dir": (elsewhere, f"canary-temp-{token}"),
             "checkout": (in_checkout, f"canary-checkout-{token}")}  # fmt: skip
    for path, secret in found.values():
        path.write_text(secret)
    yield found
    in_checkout.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def same_worker(validator) -> Iterator[None]:
    """One live worker through each test (files planted in its home stay there): no recycling
    midway, and the worker is the same at the end (no attempt crashed it)."""
    validator.sandbox.request({"op": "ping"}, what="ping")
    validator.sandbox.uses = 0
    pid = validator.sandbox.pid
    yield
    assert validator.sandbox.pid == pid


def _hook(validator, action: str, **extra) -> dict:
    answer = validator.sandbox.request({"op": "test", "action": action, **extra}, what=action)
    assert answer["ok"] is True, answer
    return answer


def _planted(validator, secret: str) -> Path:
    """A file the worker may read (its own scratch), for the controls."""
    path = validator.sandbox._home / "tmp" / f"planted-{uuid.uuid4().hex}"  # type: ignore[operator]
    path.write_text(secret)
    return path


def _log(validator) -> str:
    return validator.sandbox._log_tail()


@pytest.mark.parametrize("action", ["read", "tf_read"])
def test_python_and_graph_ops_cannot_read_the_canaries(validator, canaries, action):
    control = _planted(validator, "control-secret")
    assert _hook(validator, action, path=str(control))["result"] == "control-secret"
    for where, (path, secret) in canaries.items():
        answer = _hook(validator, action, path=str(path))
        assert answer["blocked"] is True, (where, answer)
        assert "ermission" in answer["error"], answer  # EACCES / PermissionDeniedError
        assert secret not in json.dumps(answer) and secret not in _log(validator)


def test_the_upload_itself_is_readable_but_not_its_neighbours(validator, valid_saved_model):
    """The upload is staged into the worker's inbox: it loads; a file beside the upload's own
    directory, which the worker was not given, stays closed."""
    neighbour = valid_saved_model.parent / "neighbour.txt"
    neighbour.write_text("next to the upload")
    answer = validator.sandbox.request(
        {"op": "saved_model", "dir": str(valid_saved_model)}, what="sm"
    )
    assert answer["ok"] is True, answer
    assert _hook(validator, "read", path=str(neighbour))["blocked"] is True
    assert _hook(validator, "read", path=str(valid_saved_model / "saved_model.pb"))["blocked"]
    assert (valid_saved_model / "saved_model.pb").exists()  # staged by a link, not moved


def _reading_saved_model(directory: Path, target: Path) -> Path:
    """A SavedModel whose serving_default reads `target` and fails with its contents in the
    error message (what `tf.debugging.assert_equal` prints), i.e. a graph built to leak."""
    import tensorflow as tf

    class Leaky(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
        def serve(self, x):
            data = tf.io.read_file(str(target))
            tf.debugging.assert_equal(data, tf.constant("nothing"), message="leak")
            return {"y": x * 2.0}

    module = Leaky()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.serve})
    return directory


def test_a_hostile_graph_cannot_read_the_canaries(validator, canaries, tmp_path):
    secret = "control-graph-secret"
    control = _reading_saved_model(tmp_path / "control", _planted(validator, secret))
    answer = validator.sandbox.request({"op": "saved_model", "dir": str(control)}, what="c")
    assert answer["ok"] is False and secret in answer["message"], answer  # it would leak
    for where, (path, secret) in canaries.items():
        model = _reading_saved_model(tmp_path / where.replace(" ", "-"), path)
        answer = validator.sandbox.request({"op": "saved_model", "dir": str(model)}, what=where)
        assert answer["ok"] is False, answer
        assert "ermission" in answer["message"], answer
        assert secret not in json.dumps(answer) and secret not in _log(validator)


def _keras_reading(valid_keras: Path, target: Path, out: Path) -> Path:
    """The valid model plus a StringLookup whose config names `target` as its vocabulary file
    (Keras reads the file when it builds the layer from its config)."""
    config = json.loads(corpus.read_member(valid_keras, "config.json"))
    layer = {
        "module": "keras.layers",
        "class_name": "StringLookup",
        "config": {"name": "lookup", "vocabulary": str(target)},
        "registered_name": None,
        "name": "lookup",
        "inbound_nodes": [],
    }
    weights = corpus.read_member(valid_keras, "model.weights.h5")
    return corpus.write_keras(out, corpus.with_layer(config, layer), weights=weights)


def test_a_hostile_keras_config_cannot_read_the_canaries(
    validator, canaries, valid_keras, tmp_path
):
    """Through the sandbox's own load (safe_mode on), Keras refuses the path itself; with
    safe_mode off (as if a Keras bug bypassed it) Keras reads the file, and Landlock stops it."""
    home = validator.sandbox._home  # type: ignore[attr-defined]
    control = _keras_reading(valid_keras, _planted(validator, "control-word"), tmp_path / "c.keras")
    staged = home / "tmp" / "control.keras"
    staged.write_bytes(control.read_bytes())
    assert "control-word" in _hook(validator, "keras_unsafe", path=str(staged))["result"]
    for where, (path, secret) in canaries.items():
        name = where.replace(" ", "-")
        model = _keras_reading(valid_keras, path, tmp_path / f"{name}.keras")
        export = tmp_path / "export" / name
        answer = validator.sandbox.request(
            {"op": "keras", "path": str(model), "export_dir": str(export)}, what=where
        )
        assert answer["ok"] is False and secret not in json.dumps(answer), answer
        assert not export.exists()
        staged = home / "tmp" / f"{name}.keras"
        staged.write_bytes(model.read_bytes())
        answer = _hook(validator, "keras_unsafe", path=str(staged))
        # The canary exists and the same code read the control file: what differs is Landlock.
        assert path.exists() and answer["blocked"] is True, answer
        assert secret not in json.dumps(answer) and secret not in _log(validator)


def test_the_inbox_is_read_only(validator):
    """Uploads are hard-linked into the inbox: the worker reads them but cannot write through
    the link into the caller's file."""
    staged = validator.sandbox._home / "in" / f"staged-{uuid.uuid4().hex}"  # type: ignore[operator]
    staged.write_text("upload bytes")
    assert _hook(validator, "read", path=str(staged))["result"] == "upload bytes"
    answer = _hook(validator, "write", path=str(staged))
    assert answer["blocked"] is True and "ermission" in answer["error"], answer
    assert staged.read_text() == "upload bytes"
