"""The Terraform providers' real schemas, offline, from the prebuilt cdktf provider packages.

`terraform providers schema -json` needs the provider binaries, which cannot be downloaded here. The
npm packages `@cdktf/provider-<name>` are generated from exactly that schema and carry it in their
jsii assembly (`package/.jsii`, ~100 MB for google): every resource and data source is a class whose
`config` struct lists the arguments and nested blocks, each documented with a link to its Terraform
Registry anchor (`.../docs/resources/storage_bucket#uniform_bucket_level_access`), which gives the
exact snake_case name.

`dev/tf-tools.sh` runs `python -m tests.terraform.provider_schema build ...` once: it downloads each
pinned package with `npm pack`, checks the registry's sha512, and keeps only a compact JSON
(`SCHEMA_FILE`, a few MB) of every resource and data source; the tarball is deleted. The tests read
that JSON (test_tf_schema.py).

Schema node, for a resource, data source or nested block:
    {"arguments": [...], "required": [...], "blocks": {name: node}, "attributes": [...]}
`arguments` are the names a configuration may set, `required` those it must set, `blocks` the nested
blocks, and (top level only) `attributes` every readable attribute, computed ones included, in
normalised form (lower case, no underscores; see `normalise`).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from tests.terraform.tfparse import ROOT

SCHEMA_DIR = ROOT / ".venv-checkov" / "provider-schemas"
SCHEMA_FILE = SCHEMA_DIR / "schemas.json"
FORMAT = 1  # bump when the JSON layout changes, so dev/tf-tools.sh rebuilds old caches

_SUMMARY = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/([\w-]+)/([\w-]+)/([\w.]+)/docs/"
    r"(resources|data-sources)/\w+ (\w+)\}"
)
_ANCHOR = re.compile(r"\{@link https://registry\.terraform\.io/\S+#(\w+) ")
_META_BASES = {"cdktf.TerraformResource": "resource", "cdktf.TerraformDataSource": "data"}


def normalise(name: str) -> str:
    """`output_base64sha256` and cdktf's `outputBase64Sha256` compare equal this way."""
    return name.replace("_", "").lower()


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def _tf_name(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    for text in (docs.get("remarks", ""), docs.get("summary", "")):
        match = _ANCHOR.search(text)
        if match:
            return match.group(1)
    return _snake(prop["name"])  # two properties in google 6.50.0 lack the link


def _members(type_ref: dict[str, Any]) -> list[dict[str, Any]]:
    if "union" in type_ref:
        return [m for t in type_ref["union"]["types"] for m in _members(t)]
    return [] if type_ref.get("fqn") == "cdktf.IResolvable" else [type_ref]


def _block_struct(type_ref: dict[str, Any], types: dict[str, Any]) -> str | None:
    """The struct fqn if this property is a nested block (a struct, or a list/set of them)."""
    for member in _members(type_ref):
        collection = member.get("collection")
        if collection:
            member = collection["elementtype"]
        fqn = member.get("fqn")
        if fqn and types.get(fqn, {}).get("datatype"):
            return fqn
    return None


def _node(fqn: str, types: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    assert depth < 20, f"nesting too deep at {fqn}"
    arguments: list[str] = []
    required: list[str] = []
    blocks: dict[str, Any] = {}
    for prop in types[fqn].get("properties", []):
        name = _tf_name(prop)
        struct = _block_struct(prop["type"], types)
        if struct is not None:
            blocks[name] = _node(struct, types, depth + 1)
        else:
            arguments.append(name)
            if not prop.get("optional"):
                required.append(name)
    return {"arguments": sorted(arguments), "required": sorted(required), "blocks": blocks}


def _readable(cls: dict[str, Any]) -> list[str]:
    names = set()
    for prop in cls.get("properties", []):
        if prop.get("static") or prop.get("protected"):
            continue
        names.add(normalise(prop["name"].removesuffix("Input")))
    return sorted(names)


def schema_from_assembly(assembly: dict[str, Any]) -> dict[str, Any]:
    """{"resource": {type: node}, "data": {type: node}, "provider": ..., "version": ...}."""
    types = assembly["types"]
    out: dict[str, Any] = {"resource": {}, "data": {}}
    provider: tuple[str, str] | None = None
    for cls in types.values():
        kind = _META_BASES.get(cls.get("base", ""))
        if cls.get("kind") != "class" or kind is None:
            continue
        match = _SUMMARY.search(cls.get("docs", {}).get("summary", ""))
        assert match, f"no registry link in {cls['fqn']}'s summary"
        namespace, name, version, _, tf_type = match.groups()
        assert provider in (None, (f"{namespace}/{name}", version)), (provider, match.groups())
        provider = (f"{namespace}/{name}", version)
        (config,) = [p for p in cls["initializer"]["parameters"] if p["name"] == "config"]
        node = _node(config["type"]["fqn"], types)
        node["attributes"] = sorted({*_readable(cls), *map(normalise, node["arguments"])})
        out[kind][tf_type] = node
    assert provider is not None and out["resource"], "no resources found in the assembly"
    out["provider"], out["version"] = provider
    return out


def read_assembly(tarball: Path) -> dict[str, Any]:
    """package/.jsii from an npm tarball (following jsii's gzip file redirect if present)."""
    with tarfile.open(tarball, "r:gz") as tar:

        def member(name: str) -> bytes:
            handle = tar.extractfile(f"package/{name}")
            assert handle is not None, f"{tarball} has no package/{name}"
            return handle.read()

        assembly = json.loads(member(".jsii"))
        if assembly.get("schema") == "jsii/file-redirect":
            data = member(assembly["filename"])
            if assembly.get("compression") == "gzip":
                data = gzip.decompress(data)
            assembly = json.loads(data)
    return assembly


def _check_integrity(tarball: Path, integrity: str) -> None:
    algorithm, _, expected = integrity.partition("-")
    digest = hashlib.new(algorithm, tarball.read_bytes()).digest()
    actual = base64.b64encode(digest).decode()
    if actual != expected:
        raise SystemExit(f"{tarball.name}: {algorithm} is {actual}, pinned {expected}")


def _npm_pack(spec: str, destination: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            "provider schemas: npm not found on PATH (it downloads the cdktf packages)"
        )
    result = subprocess.run(
        [npm, "pack", spec, "--json", "--silent", "--pack-destination", str(destination)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed:\n{result.stderr[-2000:]}")
    (info,) = json.loads(result.stdout)
    return destination / info["filename"]


def build(packages: list[str], out: Path) -> None:
    """packages: "<npm spec>=<sha512 integrity>" each; writes `out` unless it is already current."""
    wanted = {spec: integrity for spec, _, integrity in (p.partition("=") for p in packages)}
    if out.exists():
        current = json.loads(out.read_text(encoding="utf-8"))
        if current.get("format") == FORMAT and current.get("packages") == wanted:
            print(f"provider schemas: {out} is current")
            return
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"format": FORMAT, "packages": wanted, "providers": {}}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        for spec, integrity in wanted.items():
            print(f"provider schemas: npm pack {spec}")
            tarball = _npm_pack(spec, Path(tmp))
            _check_integrity(tarball, integrity)
            schema = schema_from_assembly(read_assembly(tarball))
            schema["package"] = spec
            short = schema["provider"].split("/")[-1]
            result["providers"][short] = schema
            tarball.unlink()
    partial = out.with_suffix(".tmp")
    partial.write_text(json.dumps(result, separators=(",", ":")), encoding="utf-8")
    partial.replace(out)
    sizes = ", ".join(
        f"{name} {s['version']}: {len(s['resource'])} resources, {len(s['data'])} data sources"
        for name, s in result["providers"].items()
    )
    print(f"provider schemas: wrote {out} ({sizes})")


def load(path: Path = SCHEMA_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="download the packages and write the compact JSON")
    build_cmd.add_argument("--out", type=Path, default=SCHEMA_FILE)
    build_cmd.add_argument("packages", nargs="+", help="@cdktf/provider-x@1.2.3=sha512-...")
    args = parser.parse_args(argv)
    build(args.packages, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
