"""Every .tf parses, and the module follows its conventions (typed, described, validated inputs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.terraform.tfparse import TF_DIR, one, parse_tf, tf_files


def test_hcl2_is_the_8x_parser_not_checkovs_fork() -> None:
    # bc-python-hcl2 (checkov's dependency) installs into the same `hcl2` package and silently
    # gives the 0.4 behaviour; dev/tf-tools.sh keeps it out of this venv.
    from hcl2.utils import SerializationOptions

    parsed = parse_tf_text('variable "x" {\n  default = "a"\n}\n')
    assert SerializationOptions is not None
    assert parsed == {"variable": [{"x": {"default": "a"}}]}, parsed


def parse_tf_text(text: str) -> dict[str, Any]:
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        strip_string_quotes=True, with_comments=False, explicit_blocks=False
    )
    return hcl2.loads(text, serialization_options=options)


def test_module_and_example_files_exist() -> None:
    names = {p.relative_to(TF_DIR).as_posix() for p in tf_files()}
    expected = {
        "versions.tf",
        "variables.tf",
        "main.tf",
        "apis.tf",
        "bucket.tf",
        "source.tf",
        "function.tf",
        "trigger.tf",
        "iam.tf",
        "monitoring.tf",
        "outputs.tf",
        "examples/basic/main.tf",
    }
    assert expected <= names, f"missing: {sorted(expected - names)}"


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: p.relative_to(TF_DIR).as_posix())
def test_every_tf_file_parses(path: Path) -> None:
    doc = parse_tf(path)
    assert doc, f"{path} parsed to nothing"


def test_versions_pin_google_and_archive(module: dict[str, Any]) -> None:
    (terraform,) = module["terraform"]
    assert terraform["required_version"].startswith(">=")
    providers = one(terraform["required_providers"])
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["archive"]["source"] == "hashicorp/archive"
    for name in ("google", "archive"):
        version = providers[name]["version"]
        assert ">=" in version and "<" in version.replace(">=", ""), (
            f"{name} must be pinned to a range with an upper bound, got {version!r}"
        )


def test_every_variable_has_type_and_description(module: dict[str, Any]) -> None:
    for name, body in module["variable"].items():
        assert "type" in body, f"variable {name} has no type"
        assert len(body.get("description", "")) >= 15, f"variable {name} needs a description"


@pytest.mark.parametrize(
    ("variable", "allowed"),
    [
        ("trigger_mode", {"direct", "notification"}),
        ("default_version_policy", {"new", "keep"}),
        ("log_level", {"DEBUG", "INFO", "WARNING", "ERROR"}),
        ("memory", {"4Gi", "8Gi", "16Gi", "32Gi"}),
    ],
)
def test_enum_variables_are_validated(
    module: dict[str, Any], variable: str, allowed: set[str]
) -> None:
    body = module["variable"][variable]
    condition = one(body["validation"])["condition"]
    for value in allowed:
        assert f'"{value}"' in condition, f"{variable}: {value!r} missing from {condition}"
    assert body["default"] in allowed


def test_every_output_is_described(module: dict[str, Any]) -> None:
    for name, body in module["output"].items():
        assert body.get("description"), f"output {name} has no description"


def test_example_calls_the_module() -> None:
    doc = parse_tf(TF_DIR / "examples" / "basic" / "main.tf")
    (modules,) = doc["module"]
    registrar = modules["registrar"]
    assert registrar["source"] == "../.."
    assert {"project_id", "bucket_name"} <= set(registrar)
    text = (TF_DIR / "examples" / "basic" / "main.tf").read_text()
    assert "terraform apply" in text and "gcloud storage cp" in text, "README snippet missing"
