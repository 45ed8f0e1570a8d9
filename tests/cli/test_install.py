"""The CLI installs on its own: a fresh venv, `pip install ".[cli]"`, then `registrar --help`.

Slow-ish (pip unpacks TensorFlow from its cache) but the only honest check that pyproject.toml
declares what the code imports: `pip install .` used to give a `registrar` that could not start.
"""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_registrar_help_works_in_a_fresh_venv_from_the_cli_extra(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "requirements-cli.txt", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "handlers", source / "handlers", ignore=shutil.ignore_patterns("__pycache__")
    )
    env_dir = tmp_path / "v"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{source}[cli]",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    shown = subprocess.run(
        [str(env_dir / "bin" / "registrar"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the checkout
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "usage: registrar" in shown.stdout and "backfill" in shown.stdout
    # The installed package is what ran, under its own name: no top-level `handlers` is installed.
    where = subprocess.run(
        [str(python), "-c", "import gcs_model_registrar as p; print(p.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert str(env_dir) in where.stdout
    generic = subprocess.run(
        [str(python), "-c", "import handlers"], capture_output=True, text=True, cwd=tmp_path
    )
    assert "No module named 'handlers'" in generic.stderr
