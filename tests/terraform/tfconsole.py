"""Terraform itself evaluates the module's provider-free parts: `terraform console` on a probe copy.

The probe holds variables.tf and every top-level `locals` block of the module that references no
resource or data source (directly or through another local), so `terraform init` needs no provider
and `terraform console` evaluates variables' validation (cross-variable ones included), locals, and
any expression built from them, e.g. a precondition's condition with `self` replaced by a variable.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.terraform.tfparse import TF_DIR

TERRAFORM = shutil.which("terraform")
BASE_VARS = {"project_id": "my-project", "bucket_name": "my-project-models"}

_RESOURCE_REF = re.compile(r"(?<![\w.])(?:data\.\w+|(?:google|time|archive)_\w+)\.\w+")
_LOCAL_REF = re.compile(r"(?<![\w.])local\.(\w+)")
_LOCAL_DEF = re.compile(r"^  (\w+)\s*=", re.M)


def top_level_blocks(text: str, header: str) -> list[str]:
    return re.findall(rf"^{re.escape(header)} \{{\n.*?^\}}\n", text, flags=re.M | re.S)


def provider_free_locals() -> str:
    """Every module `locals` block that (transitively) references no resource or data source."""
    blocks = [
        b for p in sorted(TF_DIR.glob("*.tf")) for b in top_level_blocks(p.read_text(), "locals")
    ]
    candidates = [b for b in blocks if not _RESOURCE_REF.search(b)]
    while True:  # drop blocks using locals that only excluded blocks define
        defined = {name for b in candidates for name in _LOCAL_DEF.findall(b)}
        kept = [b for b in candidates if set(_LOCAL_REF.findall(b)) <= defined]
        if kept == candidates:
            return "\n".join(kept)
        candidates = kept


def make_probe(directory: Path, extra: str = "") -> Path:
    shutil.copy(TF_DIR / "variables.tf", directory)
    (directory / "locals.tf").write_text(provider_free_locals() + extra, encoding="utf-8")
    (directory / "cli.tfrc").write_text("")
    result = run(directory, ["init", "-backend=false", "-input=false", "-no-color"])
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def run(directory: Path, args: list[str], stdin: str = "") -> subprocess.CompletedProcess:
    assert TERRAFORM is not None
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(directory),
        "TF_DATA_DIR": str(directory / ".tf-data"),
        "TF_CLI_CONFIG_FILE": str(directory / "cli.tfrc"),
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
    }
    return subprocess.run(
        [TERRAFORM, *args],
        cwd=directory,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def evaluate(probe: Path, expression: str, **variables: Any) -> subprocess.CompletedProcess:
    args = ["console", "-no-color"]
    for name, value in {**BASE_VARS, **variables}.items():
        rendered = value if isinstance(value, str) else json.dumps(value)
        args += ["-var", f"{name}={rendered}"]
    return run(probe, args, stdin=f"jsonencode({expression})\n")


def value(probe: Path, expression: str, **variables: Any) -> Any:
    result = evaluate(probe, expression, **variables)
    # `terraform console` exits 0 even when a variable fails validation: read what it says.
    assert result.returncode == 0 and "Error:" not in result.stderr, result.stdout + result.stderr
    return json.loads(json.loads(result.stdout.strip()))


def rejected(probe: Path, variable: str, **variables: Any) -> str:
    """stderr of a console run that must fail `variable`'s validation ("" if it passed)."""
    result = evaluate(probe, "var.project_id", **variables)
    if "Invalid value for variable" in result.stderr and f'variable "{variable}"' in result.stderr:
        return result.stderr
    return ""


def unwrap(expression: str) -> str:
    """python-hcl2 gives an expression attribute as "${...}"; console wants the bare expression."""
    assert expression.startswith("${") and expression.endswith("}"), expression
    return expression[2:-1]
