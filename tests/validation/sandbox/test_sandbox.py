"""The sandboxed worker: valid models pass, crashes/hangs/OOM are contained, reuse and recycling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handlers.errors import Rejected
from tests import modelfactory


def test_valid_keras_exports_a_loadable_saved_model(validator, valid_keras, tmp_path):
    report = validator.validate_keras(valid_keras, tmp_path / "work")
    assert report.kind == "keras"
    assert report.smoke_test == "passed"
    assert report.saved_model_dir == tmp_path / "work" / "saved_model"
    assert [(t.name, t.dtype, t.shape) for t in report.inputs] == [("x", "float32", (None, 4))]
    assert [t.shape for t in report.outputs] == [(None, 3)]
    assert report.summary().startswith("passed; in=x:float32[?,4]; out=")

    import keras
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(str(report.saved_model_dir))
    x = np.arange(8, dtype="float32").reshape(2, 4)
    (y,) = loaded.signatures["serving_default"](x=tf.constant(x)).values()
    expected = keras.saving.load_model(valid_keras)(x)
    np.testing.assert_allclose(y.numpy(), np.asarray(expected), rtol=1e-5)
    # tf.saved_model.save, not model.export(): weights are stored once.
    var_bytes = sum(p.stat().st_size for p in (report.saved_model_dir / "variables").iterdir())
    assert var_bytes < 2000


def test_valid_sharded_saved_model_passes(validator, valid_saved_model, tmp_path):
    report = validator.validate_saved_model(valid_saved_model, tmp_path / "work")
    assert report.kind == "saved_model"
    assert report.saved_model_dir == valid_saved_model
    assert report.smoke_test == "passed"
    assert report.inputs[0].shape == (None, 4)
    assert any("3 shard" in note for note in report.notes)


def test_worker_is_reused(validator, valid_saved_model, tmp_path):
    validator.validate_saved_model(valid_saved_model, tmp_path / "a")
    pid = validator.sandbox.pid
    validator.validate_saved_model(valid_saved_model, tmp_path / "b")
    assert pid is not None and validator.sandbox.pid == pid


def test_worker_recycled_after_max_uses(validator, valid_saved_model, tmp_path):
    validator.validate_saved_model(valid_saved_model, tmp_path / "a")
    validator.sandbox.max_uses = validator.sandbox.uses + 1
    try:
        validator.validate_saved_model(valid_saved_model, tmp_path / "b")
        assert validator.sandbox.pid is None  # stopped after its last allowed use
    finally:
        validator.sandbox.max_uses = validator.settings.validator_max_uses
    assert validator.validate_saved_model(valid_saved_model, tmp_path / "c").smoke_test == "passed"


@pytest.mark.parametrize(
    ("action", "code"),
    [
        ("segfault", "sandbox.crash"),
        ("hang", "sandbox.timeout"),
        ("allocate", "sandbox.out_of_memory"),
    ],
)
def test_worker_failure_is_contained(validator, valid_saved_model, tmp_path, action, code):
    validator.sandbox.request({"op": "ping"}, what="ping")  # worker up before the clock starts
    old_timeout, home, pid = (
        validator.sandbox.timeout_seconds,
        validator.sandbox._home,
        validator.sandbox.pid,
    )
    validator.sandbox.timeout_seconds = 3 if action == "hang" else 60
    try:
        with pytest.raises(Rejected) as info:
            validator._run({"op": "test", "action": action}, what="a test request")
    finally:
        validator.sandbox.timeout_seconds = old_timeout
    assert info.value.code == code, str(info.value)
    assert validator.sandbox.pid is None and home is not None and not home.exists()
    with pytest.raises(ProcessLookupError):
        __import__("os").kill(pid, 0)
    report = validator.validate_saved_model(valid_saved_model, tmp_path / "next")
    assert report.smoke_test == "passed"


def test_test_hooks_are_off_without_the_parent_env(tmp_path):
    # A worker started without the test env var refuses test actions (artifacts cannot set env).
    script = textwrap.dedent(
        """
        import os, sys
        os.environ.pop("REGISTRAR_SANDBOX_TEST_HOOKS", None)
        from handlers.validation.sandbox.process import Sandbox
        s = Sandbox(memory_mb=3072, timeout_seconds=60, max_uses=5, temp_dir=None)
        print(s.request({"op": "test", "action": "segfault"}, what="x").get("code"))
        s.stop()
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "REGISTRAR_SANDBOX_TEST_HOOKS"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.stdout.strip().splitlines()[-1] == "sandbox.bad_request", out.stderr[-2000:]


def test_static_rejection_never_imports_tensorflow(tmp_path):
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    script = "\n".join(
        [
            "import sys",
            "from pathlib import Path",
            "from handlers.errors import Rejected",
            "from handlers.settings import Settings",
            "from handlers.validation.validator import Validator",
            "v = Validator(Settings(project='test-project'))",
            "try:",
            f"    v.validate_keras(Path({str(junk)!r}), Path({str(tmp_path)!r}))",
            "except Rejected as e:",
            "    code = e.code",
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]",
            "print([code], heavy, v.sandbox.pid)",
        ]
    )
    out = _python(script)
    assert out.stdout.strip() == "['keras.truncated_zip'] [] None", out.stderr[-2000:]


def _python(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a fresh interpreter at the repo root (a clean sys.modules to inspect)."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_keras_zip_checks_import_no_tensorflow_either(tmp_path):
    """The full static .keras scan of a valid model (zip, config, h5) stays TF-free."""
    path = modelfactory.build_keras_model(tmp_path / "m.keras", seed=3)
    script = (
        "import sys; from pathlib import Path; from handlers.validation.scan.keras import scan_keras_file; "
        "from handlers.validation.scan.savedmodel import scan_saved_model_dir; "
        "from handlers.settings import Settings; "
        f"scan_keras_file(Path({str(path)!r}), Settings(project='test-project')); "
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')])"
    )
    out = _python(script)
    assert out.stdout.strip() == "[]", out.stderr[-2000:]


def test_modelfactory_shards_and_determinism(tmp_path):
    a = modelfactory.build_keras_model(tmp_path / "a.keras", seed=1)
    b = modelfactory.build_keras_model(tmp_path / "b.keras", seed=1)
    c = modelfactory.build_keras_model(tmp_path / "c.keras", seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    sm = modelfactory.build_saved_model(tmp_path / "sm", shards=2)
    names = sorted(p.name for p in (sm / "variables").iterdir())
    assert names == [
        "variables.data-00000-of-00002",
        "variables.data-00001-of-00002",
        "variables.index",
    ]
