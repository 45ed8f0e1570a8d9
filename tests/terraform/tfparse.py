"""Parsed Terraform for the offline checks: python-hcl2 8.x, plain dicts, expressions as "${...}".

`module` merges every top-level .tf of terraform/ (the module itself; examples are parsed separately
by the syntax test). Blocks become `{"resource": {type: {name: body}}, "variable": {name: body}, ...}`
and every nested block a list of dicts, as python-hcl2 gives them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"


def tf_files() -> list[Path]:
    """Every .tf file of the module and its examples, skipping Terraform's own .terraform dirs."""
    return sorted(p for p in TF_DIR.rglob("*.tf") if ".terraform" not in p.parts)


def parse_tf(path: Path, *, explicit_blocks: bool = False) -> dict[str, Any]:
    """explicit_blocks=True marks every block body with "__is_block__": True, which tells a nested
    block (`versioning { ... }`) from an argument holding a list of objects (`x = [{ ... }]`)."""
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(
        strip_string_quotes=True, with_comments=False, explicit_blocks=explicit_blocks
    )
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=options)


def merge_module(paths: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "resource": {},
        "data": {},
        "variable": {},
        "output": {},
        "locals": {},
        "terraform": [],
    }
    for path in paths:
        doc = parse_tf(path)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        assert name not in merged[kind].setdefault(rtype, {}), (
                            f"{kind} {rtype}.{name} declared twice"
                        )
                        merged[kind][rtype][name] = body
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                for name, body in block.items():
                    assert name not in merged[kind], f"{kind} {name} declared twice"
                    merged[kind][name] = body
        for block in doc.get("locals", []):
            for name, value in block.items():
                assert name not in merged["locals"], f"local {name} declared twice"
                merged["locals"][name] = value
        merged["terraform"].extend(doc.get("terraform", []))
    return merged


def one(blocks: Any) -> dict[str, Any]:
    """A nested block that must appear exactly once (python-hcl2 gives a list of dicts)."""
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one block, got {blocks!r}"
    return blocks[0]


def local_ref(value: Any, module: dict[str, Any]) -> Any:
    """Follow a bare "${local.name}" reference to the local's value; anything else is returned."""
    if isinstance(value, str) and value.startswith("${local.") and value.endswith("}"):
        name = value[len("${local.") : -1]
        if name.isidentifier():
            return module["locals"][name]
    return value


@functools.cache
def load_module() -> dict[str, Any]:
    return merge_module(sorted(TF_DIR.glob("*.tf")))
