"""`terraform fmt -check` and `terraform validate`, when a terraform binary is on PATH.

No binary: a visible skip (the only skip in these checks). validate also needs the google and
archive providers, which `terraform init` downloads from the Terraform registry; where that cannot be
reached (offline CI) the test says so and skips. Everything it would catch beyond syntax is also
covered offline by test_tf_contract.py and checkov.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.terraform.tfparse import TF_DIR

TERRAFORM = shutil.which("terraform")
needs_terraform = pytest.mark.skipif(
    TERRAFORM is None, reason="terraform binary not on PATH: fmt/validate not run"
)

# Registry unreachable: init cannot fetch providers (messages of Terraform 1.5-1.11).
_OFFLINE_MARKERS = (
    "Failed to query available provider packages",
    "could not connect to registry",
    "Failed to install provider",
)


def _terraform(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert TERRAFORM is not None
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_INPUT"] = "0"
    env["CHECKPOINT_DISABLE"] = "1"  # no version check calls home
    env["TF_DATA_DIR"] = str(tmp_path / "tf-data")  # keep .terraform/ out of the tree
    return env


@needs_terraform
def test_terraform_fmt_check(tmp_path: Path) -> None:
    result = _terraform(
        ["fmt", "-check", "-recursive", "-diff", "-no-color"], TF_DIR, _env(tmp_path)
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform`:\n{result.stdout}"


@needs_terraform
@pytest.mark.parametrize(
    "directory", [TF_DIR / "examples" / "basic", TF_DIR], ids=["example", "module"]
)
def test_terraform_validate(tmp_path: Path, directory: Path) -> None:
    env = _env(tmp_path)
    init = _terraform(["init", "-backend=false", "-input=false", "-no-color"], directory, env)
    if init.returncode != 0:
        output = init.stdout + init.stderr
        if any(marker in output for marker in _OFFLINE_MARKERS):
            pytest.skip(
                "terraform validate not run: the google/archive providers cannot be downloaded "
                "here (no Terraform registry access); fmt, hcl2, contract and checkov checks ran"
            )
        pytest.fail(f"terraform init failed:\n{output}")
    result = _terraform(["validate", "-no-color"], directory, env)
    assert result.returncode == 0, result.stdout + result.stderr
