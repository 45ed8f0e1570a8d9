"""checkov over terraform/, offline (--skip-download), from its own venv (.venv-checkov).

checkov cannot share the main venv: its bc-python-hcl2 shadows python-hcl2 (dev/tf-tools.sh).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.tfparse import ROOT, TF_DIR, tf_files

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"

# Checks that must run and pass: they encode this module's security promises.
REQUIRED_PASSES = {
    "CKV_GCP_29",  # uniform bucket-level access
    "CKV_GCP_114",  # public access prevention
    "CKV_GCP_78",  # versioning
    "CKV_GCP_124",  # function ingress not ALLOW_ALL
    "CKV_GCP_102",  # Cloud Run IAM not public
    "CKV_GCP_28",  # bucket IAM not public
}


def _run_checkov(directory: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} not found: run `bash dev/tf-tools.sh` (make test does).")
    env = {k: v for k, v in os.environ.items() if k != "LOG_LEVEL"}  # checkov reads LOG_LEVEL too
    result = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON (exit {result.returncode}):\n{result.stderr[-3000:]}")
    report = report[0] if isinstance(report, list) else report
    report["returncode"] = result.returncode
    return report


def _ids(report: dict[str, Any], kind: str) -> set[str]:
    return {c["check_id"] for c in report.get("results", {}).get(kind, [])}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return _run_checkov(TF_DIR)


def test_checkov_passes(report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert report["summary"]["parsing_errors"] == 0
    assert report["returncode"] == 0


def test_checkov_ran_the_checks_this_module_relies_on(report: dict[str, Any]) -> None:
    missing = REQUIRED_PASSES - _ids(report, "passed_checks")
    assert not missing, f"checkov did not pass {sorted(missing)}: did it scan the module?"


def test_every_skip_is_inline_with_a_reason(report: dict[str, Any]) -> None:
    inline: dict[str, list[str]] = {}
    for path in tf_files():
        for check, reason in re.findall(r"#\s*checkov:skip=(CKV2?_\w+):?(.*)", path.read_text()):
            assert len(reason.strip()) >= 20, f"{path.name}: skip of {check} needs a real reason"
            inline.setdefault(check, []).append(path.name)
    skipped = _ids(report, "skipped_checks")
    assert skipped <= set(inline), f"skipped without an inline comment: {skipped - set(inline)}"
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "").strip()) >= 20, check


def test_checkov_catches_a_public_bucket(tmp_path: Path) -> None:
    # Proves the scan has teeth: the same module without public access prevention must fail.
    copy = tmp_path / "terraform"
    shutil.copytree(TF_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.zip"))
    bucket = copy / "bucket.tf"
    text = bucket.read_text()
    weakened = text.replace('public_access_prevention    = "enforced"', "")
    assert weakened != text
    bucket.write_text(weakened)
    report = _run_checkov(copy)
    assert "CKV_GCP_114" in _ids(report, "failed_checks"), "checkov missed a public bucket"
    assert report["returncode"] != 0
