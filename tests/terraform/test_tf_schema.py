"""Every resource and data block against the pinned providers' real schemas, offline.

`terraform validate` needs the provider binaries (not downloadable here); the schemas come from the
prebuilt cdktf provider packages instead (provider_schema.py; dev/tf-tools.sh fetches them once).
Checked: every argument exists, is not a computed-only attribute and is written as an argument;
every nested block (static or `dynamic`) exists and is written as a block; required arguments are
set; and every `<type>.<name>.<attribute>` reference (and `self.<attribute>`) names an attribute
the type has.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.provider_schema import SCHEMA_FILE, load, normalise
from tests.terraform.tfparse import TF_DIR, load_module, one, parse_tf, tf_files

# Meta-arguments Terraform itself handles in resource and data blocks.
META = {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
_REFERENCE = re.compile(
    r"(?<![\w.])(data\.)?((?:google|time|archive)_\w+)\.(\w+)(?:\[[^\]]*\])?(?:\[\*\])?\.(\w+)"
)
_SELF = re.compile(r"(?<![\w.])self\.(\w+)")


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    if not SCHEMA_FILE.exists():
        pytest.fail(f"{SCHEMA_FILE} not found: run `bash dev/tf-tools.sh` (make test does).")
    return load()


def _schema_for(schemas: dict[str, Any], kind: str, rtype: str) -> dict[str, Any] | None:
    provider = schemas["providers"].get(rtype.split("_", 1)[0])
    if provider is None:
        return None
    return provider[kind].get(rtype)


def _is_block(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def check_body(body: dict[str, Any], node: dict[str, Any], where: str, top: bool) -> list[str]:
    """Problems in one block body (python-hcl2 with explicit_blocks) against a schema node."""
    problems: list[str] = []
    blocks, arguments = node["blocks"], set(node["arguments"])
    for key, value in body.items():
        if key == "__is_block__" or (top and key in META):
            continue
        if key == "dynamic":
            for dynamic in value:
                for name, spec in dynamic.items():
                    if name == "__is_block__":
                        continue
                    if name not in blocks:
                        problems.append(f"{where}: dynamic {name!r} is not a nested block")
                        continue
                    for content in spec.get("content", []):
                        problems += check_body(content, blocks[name], f"{where}.{name}", False)
            continue
        if key in blocks:
            if not _is_block(value):
                problems.append(f"{where}: {key} is a block, write `{key} {{ ... }}`")
                continue
            for index, item in enumerate(value):
                problems += check_body(item, blocks[key], f"{where}.{key}[{index}]", False)
        elif key in arguments:
            if _is_block(value):
                problems.append(f"{where}: {key} is an argument, write `{key} = ...`")
        elif normalise(key) in node.get("attributes", []):
            problems.append(f"{where}: {key} is computed (read-only), it cannot be set")
        else:
            problems.append(f"{where}: no argument or block {key!r} in the provider's schema")
    for name in node["required"]:
        if name not in body:
            problems.append(f"{where}: required argument {name!r} is missing")
    return problems


def _blocks(path: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    doc = parse_tf(path, explicit_blocks=True)
    found = []
    for kind in ("resource", "data"):
        for block in doc.get(kind, []):
            for rtype, named in block.items():
                if rtype == "__is_block__":
                    continue
                for name, body in named.items():
                    if name != "__is_block__":
                        found.append((kind, rtype, name, body))
    return found


ALL_BLOCKS = [(path, *block) for path in tf_files() for block in _blocks(path)]


def _block_id(param: tuple[Path, str, str, str, dict[str, Any]]) -> str:
    _, kind, rtype, name, _ = param
    return f"{'data.' if kind == 'data' else ''}{rtype}.{name}"


def test_schemas_are_the_pinned_provider_versions(schemas: dict[str, Any]) -> None:
    (terraform,) = load_module()["terraform"]
    pins = one(terraform["required_providers"])
    assert set(pins) == set(schemas["providers"]), "a schema for every provider the module pins"
    for name, pin in pins.items():
        schema = schemas["providers"][name]
        assert pin["source"] == schema["provider"], (name, pin["source"], schema["provider"])
        match = re.fullmatch(r">= (\d+)\.(\d+), < (\d+)\.0", pin["version"])
        assert match, f"{name}: pin {pin['version']!r} is not '>= X.Y, < Z.0'"
        lower, upper = (int(match[1]), int(match[2])), int(match[3])
        major, minor, _ = (int(p) for p in schema["version"].split("."))
        # The checked schema is the oldest version the pin admits; later minors only add.
        assert (major, minor) == lower, (
            f"{name}: pinned from {lower}, schema is {schema['version']}"
        )
        assert upper == major + 1 or (major == 0 and upper == 1), (name, pin["version"])


def test_every_module_block_is_checked(schemas: dict[str, Any]) -> None:
    ids = {_block_id(b) for b in ALL_BLOCKS}
    assert {
        "google_cloudfunctions2_function.registrar",
        "data.google_storage_bucket.existing",
        "time_sleep.iam_propagation",
        "data.archive_file.source",
    } <= ids, sorted(ids)
    for _, kind, rtype, _, _ in ALL_BLOCKS:
        assert _schema_for(schemas, kind, rtype) is not None, f"no schema for {kind} {rtype}"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=_block_id)
def test_block_matches_the_provider_schema(
    schemas: dict[str, Any], block: tuple[Path, str, str, str, dict[str, Any]]
) -> None:
    path, kind, rtype, _, body = block
    node = _schema_for(schemas, kind, rtype)
    assert node is not None, f"{path.name}: {kind} type {rtype} does not exist in the provider"
    problems = check_body(body, node, f"{path.name}: {_block_id(block)}", top=True)
    assert not problems, "\n".join(problems)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def reference_problems(schemas: dict[str, Any], documents: list[dict[str, Any]]) -> list[str]:
    declared = {
        (kind, rtype, name)
        for doc in documents
        for kind in ("resource", "data")
        for block in doc.get(kind, [])
        for rtype, named in block.items()
        for name in named
    }
    problems = []
    for doc in documents:
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        own = _schema_for(schemas, kind, rtype) or {"attributes": []}
                        for text in _strings(body.get("lifecycle", [])):
                            for attr in _SELF.findall(text):
                                if normalise(attr) not in own["attributes"]:
                                    problems.append(f"{rtype}.{name}: self.{attr} does not exist")
        for text in _strings(doc):
            for data, rtype, name, attr in _REFERENCE.findall(text):
                kind = "data" if data else "resource"
                ref = f"{data}{rtype}.{name}.{attr}"
                if (kind, rtype, name) not in declared:
                    problems.append(f"{ref}: no {kind} {rtype}.{name} in the module")
                    continue
                node = _schema_for(schemas, kind, rtype)
                if node is None or normalise(attr) not in node["attributes"]:
                    problems.append(f"{ref}: {rtype} has no attribute {attr!r}")
    return problems


def test_references_name_real_attributes(schemas: dict[str, Any]) -> None:
    documents = [parse_tf(p) for p in sorted(TF_DIR.glob("*.tf"))]
    text = " ".join(s for d in documents for s in _strings(d))
    # The checker must see the references this module relies on at plan time.
    assert "data.google_storage_bucket.existing[0].location" in text
    assert "self.uniform_bucket_level_access" in text
    problems = reference_problems(schemas, documents)
    assert not problems, "\n".join(problems)


def _parse_text(tmp_path: Path, text: str, explicit_blocks: bool = True) -> dict[str, Any]:
    path = tmp_path / "probe.tf"
    path.write_text(text, encoding="utf-8")
    return parse_tf(path, explicit_blocks=explicit_blocks)


def test_the_checker_catches_wrong_arguments_and_block_shapes(
    schemas: dict[str, Any], tmp_path: Path
) -> None:
    doc = _parse_text(
        tmp_path,
        """
resource "google_storage_bucket" "b" {
  name     = "x"
  location = "EU"
  uniform_bucket_access = true
  versioning = { enabled = true }
  url = "gs://x"
  lifecycle_rule {
    action { type = "Delete" }
    condition { age = 1 }
    conditions { age = 2 }
  }
  dynamic "logging_config" {
    for_each = []
    content { log_bucket = "y" }
  }
}
resource "google_project_iam_member" "m" {
  project = "p"
  role    = "roles/viewer"
  condition { title = "t" }
}
""",
    )
    problems: list[str] = []
    for block in doc["resource"]:
        for rtype, named in block.items():
            for name, body in named.items():
                node = _schema_for(schemas, "resource", rtype)
                assert node is not None
                problems += check_body(body, node, f"{rtype}.{name}", top=True)
    text = "\n".join(problems)
    assert "no argument or block 'uniform_bucket_access'" in text, text
    assert "versioning is a block" in text, text
    assert "url is computed" in text, text
    assert "lifecycle_rule[0]: no argument or block 'conditions'" in text, text
    assert "dynamic 'logging_config' is not a nested block" in text, text
    assert "google_project_iam_member.m: required argument 'member' is missing" in text, text
    assert "condition[0]: required argument 'expression' is missing" in text, text
    assert len(problems) == 7, text


def test_the_checker_catches_wrong_references(schemas: dict[str, Any], tmp_path: Path) -> None:
    doc = _parse_text(
        tmp_path,
        """
data "google_storage_bucket" "b" {
  name = "x"
  lifecycle {
    postcondition {
      condition     = self.uniform_access
      error_message = "x"
    }
  }
}
resource "google_service_account" "sa" {
  account_id = "abcdef"
}
locals {
  good    = google_service_account.sa.email
  typo    = google_service_account.sa.mail
  missing = google_service_account.other.email
  data_ok = data.google_storage_bucket.b.location
}
""",
        explicit_blocks=False,
    )
    problems = reference_problems(schemas, [doc])
    assert sorted(problems) == [
        "google_service_account.other.email: no resource google_service_account.other in the module",
        "google_service_account.sa.mail: google_service_account has no attribute 'mail'",
        "google_storage_bucket.b: self.uniform_access does not exist",
    ], problems
