"""Real models are accepted: a corpus built from Keras' and TensorFlow's own code (random weights)
goes through the registrar's validation, every legitimate model registers, every rejection is one
the README names with its code, and every registered artifact loads and serves in TensorFlow
2.15.1 (Vertex's newest prebuilt serving image) the way TF Serving loads it, with TF 2.21's outputs.

Families: keras.applications (`DEFAULT_APPLICATIONS`; REGISTRAR_CORPUS=all: every architecture
in `corpus.APPLICATIONS`), the built-in preprocessing/recurrent/attention layers, `model.export()`
and `tf.Module` SavedModels, Keras 2 SavedModels from TF 2.15.1 (`.venv-tf215`) and from tf_keras,
Keras 2 `.keras` files (refused first: `keras.keras2_format`, and the conversion it names works),
and SavedModels carrying functions serving never calls. Each artifact is built once per session.
`-s` prints the results table (the README's "Real models" table comes from it).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.errors import Rejected
from handlers.settings import Settings
from handlers.validation.report import ValidationReport
from handlers.validation.scan.keras import KERAS2_CONVERSION
from handlers.validation.validator import Validator
from tests.validation import corpus

ROOT = Path(__file__).resolve().parents[2]
TF215 = ROOT / ".venv-tf215" / "bin" / "python"
BUILD_KERAS2 = ROOT / "tests" / "validation" / "tf215" / "build_keras2.py"
LOADER = ROOT / "tests" / "validation" / "tf215" / "load_in_tf215.py"
REGISTER = "registered"

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")


@dataclass
class Item:
    family: str
    name: str
    path: Path
    expected: str = REGISTER  # or the reason code the README names for it
    outcome: str = ""
    seconds: float = 0.0
    report: ValidationReport | None = None


def _keras2(out: Path, *, legacy: bool) -> dict[str, Any]:
    """Keras 2 artifacts built by tf.keras of TF 2.15.1, or by tf_keras on this TF."""
    python = str(ROOT / ".venv" / "bin" / "python") if legacy else str(TF215)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if legacy:
        env["TF_USE_LEGACY_KERAS"] = "1"
        kinds = ["k2_cnn_savedmodel", "k2_lstm_savedmodel", "k2_text_savedmodel", "k2_lstm_export"]
    else:
        kinds = []  # all
    done = subprocess.run(
        [python, str(BUILD_KERAS2), str(out), *kinds],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _unreached(directory: Path, method: str) -> Path:
    from tests.validation.scan import test_serving_reach as reach

    return reach.unreached_method(directory, getattr(reach, method))


@pytest.fixture(scope="session")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[Item]:
    if not TF215.exists():
        pytest.fail("no .venv-tf215: run `make tf215` (make test does) — this must not be skipped")
    root = tmp_path_factory.mktemp("corpus")
    found: list[Item] = []
    apps = (
        sorted(corpus.APPLICATIONS)
        if os.environ.get("REGISTRAR_CORPUS") == "all"
        else corpus.DEFAULT_APPLICATIONS
    )
    for name in apps:
        path = corpus.build_application(name, root / f"{name}.keras")
        found.append(Item("keras.applications (.keras)", name, path))
    for name, model in corpus.layer_zoo().items():
        model.save(root / f"{name}.keras")
        found.append(
            Item(
                "preprocessing, recurrent, attention layers (.keras)", name, root / f"{name}.keras"
            )
        )
    for which in ("export_cnn", "export_rnn", "tf_module_table"):
        path = corpus.exported(root / which, which)
        found.append(Item("model.export() / tf.Module (SavedModel)", which, path))
    for method in ("_grad_a", "_webp"):
        path = _unreached(root / f"unreached{method}", method)
        found.append(Item("functions serving never calls (SavedModel)", method.strip("_"), path))
    for kind, info in _keras2(root / "tf215", legacy=False).items():
        if kind.endswith(".keras"):
            found.append(
                Item("Keras 2 .keras (TF 2.15.1)", kind, Path(info["path"]), "keras.keras2_format")
            )
        else:
            found.append(Item("Keras 2 SavedModel (TF 2.15.1)", kind, Path(info["path"])))
    for kind, info in _keras2(root / "tf_keras", legacy=True).items():
        found.append(Item("Keras 2 SavedModel (tf_keras, TF 2.21)", kind, Path(info["path"])))
    return found


@pytest.fixture(scope="session")
def corpus_validator(settings: Settings) -> Iterator[Validator]:
    """The production default VALIDATION_TIMEOUT_SECONDS (300 s): the large architectures take
    longer than the shared validator's 60 s on a loaded 2-core machine."""
    v = Validator(replace(settings, validation_timeout_seconds=300))
    yield v
    v.close()


@pytest.fixture(scope="session")
def results(items: list[Item], corpus_validator: Validator, tmp_path_factory) -> list[Item]:
    validator = corpus_validator
    work = tmp_path_factory.mktemp("corpus-work")
    for i, item in enumerate(items):
        begun = time.perf_counter()
        try:
            if item.path.suffix == ".keras":
                item.report = validator.validate_keras(item.path, work / str(i))
            else:
                item.report = validator.validate_saved_model(item.path, work / str(i))
            item.outcome = REGISTER
        except Rejected as exc:
            item.outcome = exc.code
            print(f"{item.name}: {exc.code}: {str(exc)[:400]}")
        item.seconds = time.perf_counter() - begun
    return items


def _table(items: list[Item]) -> str:
    lines = [
        "| family | models | registered | refused as the README says | false rejections | s per model |",
        "|---|---|---|---|---|---|",
    ]
    families: dict[str, list[Item]] = {}
    for item in items:
        families.setdefault(item.family, []).append(item)
    for family, group in families.items():
        legit = [i for i in group if i.expected == REGISTER]
        false = [i for i in legit if i.outcome != REGISTER]
        refused = [i for i in group if i.expected != REGISTER and i.outcome == i.expected]
        mean = sum(i.seconds for i in group) / len(group)
        lines.append(
            f"| {family} | {len(group)} | {len(legit) - len(false)} | {len(refused)} "
            f"| {len(false)} of {len(legit)} | {mean:.1f} |"
        )
    return "\n".join(lines)


def test_corpus_registers_every_legitimate_model(results: list[Item]):
    print("\n" + _table(results))
    wrong = {
        f"{i.family}: {i.name}": (i.expected, i.outcome) for i in results if i.outcome != i.expected
    }
    assert wrong == {}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for item in results:
        if item.expected != REGISTER:
            assert f"`{item.expected}`" in readme, item.expected


def _feed(report: ValidationReport, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feed = {}
    for t in report.inputs:
        shape = [2 if d is None else d for d in t.shape]
        if t.dtype == "string":
            feed[t.name] = rng.choice(np.array([b"the cat", b"a", b"zz"]), shape)
        elif t.dtype.startswith(("int", "uint")):
            feed[t.name] = rng.integers(0, 4, shape).astype(t.dtype)
        else:
            feed[t.name] = rng.uniform(-1, 1, shape).astype(t.dtype)
    return feed


def test_every_registered_artifact_serves_in_tensorflow_2_15(results: list[Item], tmp_path: Path):
    rng = np.random.default_rng(23)
    registered = [i for i in results if i.outcome == REGISTER]
    jobs, expected = [], []
    for n, item in enumerate(registered):
        assert item.report is not None
        directory = item.report.saved_model_dir
        feed = _feed(item.report, rng)
        paths = {}
        for key, value in feed.items():
            paths[key] = str(tmp_path / f"{n}-{key}.npy")
            np.save(paths[key], value)
        jobs.append({"dir": str(directory), "feed": paths, "out": str(tmp_path / f"{n}.npz")})
        fn = tf.saved_model.load(str(directory)).signatures["serving_default"]
        outputs = fn(**{k: tf.constant(v) for k, v in feed.items()})
        expected.append({k: v.numpy() for k, v in outputs.items()})
    done = subprocess.run(
        [str(TF215), str(LOADER)], input=json.dumps(jobs), capture_output=True, text=True,
        timeout=1800, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout)
    for n, (item, answer) in enumerate(zip(registered, answers, strict=True)):
        assert answer == {"ok": True, "tf": "2.15.1"}, f"{item.name}: {answer}"
        got = dict(np.load(tmp_path / f"{n}.npz"))
        for key, value in expected[n].items():
            np.testing.assert_allclose(got[key], value, rtol=2e-3, atol=2e-3, err_msg=item.name)
    print(f"TF 2.15.1 serves all {len(registered)} registered corpus artifacts as TF 2.21 does")


def test_keras2_file_conversion_named_in_the_refusal_registers(
    items: list[Item], corpus_validator: Validator, tmp_path: Path
):
    """The one-liner the keras.keras2_format message gives, run with TF 2.15.1, makes a
    SavedModel that registers; and Keras 3 itself cannot load the Keras 2 functional file."""
    keras2 = next(i for i in items if i.name == "keras2_functional.keras")
    (tmp_path / "model.keras").write_bytes(keras2.path.read_bytes())
    command = shlex.split(KERAS2_CONVERSION)
    assert command[0] == "python"
    done = subprocess.run(
        [str(TF215), *command[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = corpus_validator.validate_saved_model(tmp_path / "model_savedmodel", tmp_path / "work")
    assert report.smoke_test == "passed"
    keras = pytest.importorskip("keras")
    with pytest.raises(TypeError, match=r"keras\.src\.engine\.functional"):
        keras.saving.load_model(keras2.path, safe_mode=True, compile=False)
