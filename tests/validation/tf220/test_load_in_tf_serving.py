"""What the registrar registers loads in the default serving image's TensorFlow (TF Serving
2.20.0 -> TensorFlow 2.20.0), in the layout it registers (`<artifact_uri>/1/`, found the way
TF Serving finds versions), and gives TensorFlow 2.21's outputs. A model using what 2.20 lacks
(DecodeJxl, new in 2.21) is rejected by the registrar's static check against the 2.20 registry,
and 2.20 shows why: the load fails. One subprocess in `.venv-tf220` (made by `make test`: target
`tf220`) for all, running the 2.15 check's loader (tests/validation/tf215/load_in_tf215.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers import serving_images
from handlers.errors import Rejected
from handlers.gcs import publish
from handlers.validation.validator import Validator
from tests import modelfactory
from tests.validation.scan import savedmodels as sm
from tests.validation.tf215.test_load_in_tf215 import (
    _feed,
    _keras_models,
    _outputs_in_tf221,
    _run_in_tf215,
)

ROOT = Path(__file__).resolve().parents[3]
TF220 = ROOT / ".venv-tf220" / "bin" / "python"

tf = pytest.importorskip("tensorflow")


def _need_venv() -> None:
    if not TF220.exists():
        pytest.fail(
            "no .venv-tf220: run `make tf220` (make test does) — this check must not be skipped"
        )


def _registered_layout(export: Path, root: Path, name: str) -> Path:
    """The export placed as publish() places it for the default image: the files in the
    directory `artifact_dir(..., numbered=True)` names, the registered artifact_uri being its
    `serving_root`."""
    target = publish.artifact_dir("registered/", name, "0" * 64, numbered=True)
    base = root / publish.serving_root(target)
    shutil.copytree(export, root / target)
    return base


@pytest.mark.slow
def test_registered_models_load_in_the_default_serving_images_tensorflow(
    validator: Validator, tmp_path: Path
):
    _need_venv()
    assert serving_images.numbered_layout(validator.settings.serving_image)
    assert serving_images.resolve_tf_version(validator.settings.serving_image, None) == "2.20"
    rng = np.random.default_rng(21)
    registered: dict[str, tuple[Path, dict[str, np.ndarray], Path]] = {}
    for name, model in _keras_models().items():
        path = tmp_path / f"{name}.keras"
        model.save(path)
        report = validator.validate_keras(path, tmp_path / f"work-{name}")
        assert "loads in serving TensorFlow 2.20" in report.notes, report.notes
        base = _registered_layout(report.saved_model_dir, tmp_path / "bucket", name)
        registered[name] = (base, _feed(report, rng), report.saved_model_dir)
    upload = modelfactory.build_saved_model_with_asset(tmp_path / "upload_with_asset")
    report = validator.validate_saved_model(upload, tmp_path / "work-upload")
    base = _registered_layout(report.saved_model_dir, tmp_path / "bucket", "uploaded")
    registered["uploaded_with_asset"] = (base, _feed(report, rng), report.saved_model_dir)

    def jxl(x: Any) -> Any:
        image = tf.raw_ops.DecodeJxl(contents=tf.constant(b""), channels=3)
        return x + tf.cast(tf.reduce_sum(image), tf.float32)

    incompatible = sm.save_serving(tmp_path / "jxl", jxl)
    with pytest.raises(Rejected) as info:
        validator.validate_saved_model(incompatible, tmp_path / "work-bad")
    assert info.value.code == "savedmodel.serving_incompatible"
    assert "DecodeJxl" in str(info.value) and "2.20" in str(info.value)

    jobs, expected = [], {}
    for name, (base, feed, export) in registered.items():
        paths = {}
        for key, value in feed.items():
            paths[key] = str(tmp_path / f"{name}-{key}.npy")
            np.save(paths[key], value)
        jobs.append({"base": str(base), "feed": paths, "out": str(tmp_path / f"{name}.npz")})
        expected[name] = _outputs_in_tf221(export, feed)
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 4), np.float32))
    bad_base = _registered_layout(incompatible, tmp_path / "bucket", "jxl")
    jobs.append({"base": str(bad_base), "feed": {"x": str(x)}, "out": str(tmp_path / "no.npz")})
    flat = tmp_path / "flat"  # the prebuilt images' layout: TF Serving finds no version in it
    shutil.copytree(registered["cnn"][2], flat)
    jobs.append({"base": str(flat), "feed": {}, "out": str(tmp_path / "no2.npz")})

    results, _ = _run_in_tf215(jobs, python=TF220)  # the same loader, in TF 2.20.0
    for name, result in zip(registered, results, strict=False):
        assert result == {"ok": True, "tf": "2.20.0", "version": "1"}, f"{name}: {result}"
        got = dict(np.load(tmp_path / f"{name}.npz"))
        assert sorted(got) == sorted(expected[name]), name
        # float16 compute (mixed precision) keeps ~3 significant digits, and two TensorFlow
        # releases may order its sums differently (oneDNN): compare it at float16's precision
        tolerance = 2e-2 if name == "mixed_precision" else 2e-3
        for key, value in expected[name].items():
            np.testing.assert_allclose(
                got[key], value, rtol=tolerance, atol=tolerance, err_msg=name
            )
    jxl_result, flat_result = results[len(registered) :]
    assert not jxl_result["ok"] and "DecodeJxl" in jxl_result["error"], jxl_result
    assert not flat_result["ok"] and "no numeric version" in flat_result["error"]


def test_committed_2_20_registry_is_what_tensorflow_2_20_registers():
    """serving_registry/tf_2_20.py is regenerated from TF 2.20.0 itself, unchanged."""
    _need_venv()
    generator = ROOT / "dev" / "gen_op_lists.py"
    done = subprocess.run(
        [str(TF220), str(generator), "registry"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    committed = ROOT / "handlers" / "validation" / "scan" / "serving_registry" / "tf_2_20.py"
    assert done.stdout == committed.read_text(encoding="utf-8"), "regenerate tf_2_20.py"
