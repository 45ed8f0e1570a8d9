"""The house rules, checked on the import graph (static, from the source): no cycles, arrows only
in the directions the layering table allows, and each module runs where the map in
handlers/__init__.py says — the CLI and the worker stay apart.

Every import counts: those inside functions and under `if TYPE_CHECKING:` too (a circle hidden
there is still a circle). An import that runs later than module import (inside a function) is
allowed only when DEFERRED names it, with the reason: its import cost.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ROOT / "handlers"

# ---- the layering, written down -----------------------------------------------------------------
# entry -> pipeline -> stages -> store -> leaves; the CLI is a second entry. A part may import its
# own modules and the parts ALLOWED names, nothing else. Compared with the first reading of the
# layers (parts + forbidden arrows), this table
# * lists what is allowed instead of what is forbidden (an allowlist: a new arrow is a decision);
# * lets intake use the store (an upload *is* objects pinned to generations: listing and pinning
#   them is intake's job) and lets the registry use it only as the others do, through records and
#   the gate's ledger (the store never imports either);
# * puts `Registration` (built from every stage's result) in the pipeline layer
#   (handlers/registration.py) and keeps outcome.py a leaf of plain values;
# * adds two leaves for rules two stages share: object_names.py (the canonical-name rule, intake
#   and validation) and limits.py (parse caps, intake from metadata and validation on the file);
# * lets the entries (main.py, cli/) import leaves directly (settings, logs, errors).
PARTS: dict[str, tuple[str, ...]] = {  # part -> dotted module prefixes
    "entry": ("main",),
    "job": ("handlers.job", "handlers.fleet"),
    "cli": ("handlers.cli",),
    "pipeline": ("handlers.pipeline", "handlers.registration"),
    "late": ("handlers.late",),
    "handoff": ("handlers.handoff",),
    "intake": ("handlers.intake",),
    "validation": ("handlers.validation",),
    "registry": ("handlers.registry",),
    "store": ("handlers.gcs",),
    "leaves": (
        "handlers.errors",
        "handlers.settings",
        "handlers.logs",
        "handlers.notify",
        "handlers.hardening",
        "handlers.outcome",
        "handlers.limits",
        "handlers.object_names",
        "handlers.model_metrics",
        "handlers.serving_images",
    ),
}
ALLOWED: dict[str, frozenset[str]] = {  # part -> the parts it may import (besides itself)
    "entry": frozenset({"pipeline", "leaves"}),
    # the Cloud Run job's entry: the function's pipeline with the job's limits
    "job": frozenset({"pipeline", "intake", "registry", "store", "leaves"}),
    "cli": frozenset({"pipeline", "handoff", "intake", "registry", "store", "leaves"}),
    "pipeline": frozenset(
        {"late", "handoff", "intake", "validation", "registry", "store", "leaves"}
    ),
    # files that reach an upload after it was settled: a stage beside the main path
    "late": frozenset({"intake", "validation", "registry", "store", "leaves"}),
    # uploads the function cannot take: the policy, and a Cloud Run job execution for each
    "handoff": frozenset({"store", "leaves"}),
    "intake": frozenset({"store", "leaves"}),
    "validation": frozenset({"leaves"}),  # reads local files only; knows no event, no registry
    "registry": frozenset({"store", "leaves"}),
    "store": frozenset({"leaves"}),  # knows no upload, no model, no registry
    "leaves": frozenset({"leaves"}),  # among themselves only (acyclic: test_no_import_cycles)
}
# Named, temporary exceptions: each arrow against the table, why it is still here, and what
# removes it. The test fails when one is gone, so the list only shrinks.
EXCEPTIONS: dict[tuple[str, str], str] = {}
# Imports that run inside a function instead of at module import, each for its cost. Everything
# else is imported at the top, where the cycle and layering checks (and readers) see it.
DEFERRED: dict[tuple[str, str], str] = {
    ("handlers.pipeline", "handlers.validation.validator"): (
        "the scanners and protobuf pools (~0.2 s) load on the first model event, not at `import "
        "main`, so unrelated objects cost nothing"
    ),
    ("handlers.pipeline", "handlers.registry.vertex"): (
        "the Vertex implementation loads with the first model event (its SDK later still), "
        "not at `import main`"
    ),
    ("handlers.pipeline", "handlers.registry.gated"): (
        "the gate's modules load on the first model event, not at `import main`"
    ),
    ("handlers.pipeline", "handlers.registry.deploy"): (
        "the endpoint modules load only with DEPLOY_ENDPOINT set, after a registration"
    ),
    ("handlers.late.arrivals", "handlers.registry.deploy"): (
        "the endpoint modules load only when late metrics promote a version with "
        "DEPLOY_ENDPOINT set"
    ),
    ("handlers.pipeline", "handlers.handoff.takeover"): (
        "the Cloud Run client loads only when an upload is handed off to the job"
    ),
    ("handlers.cli.jobs", "handlers.handoff.jobs"): (
        "the Cloud Run client (~0.3 s) loads only for `registrar job` and `backfill --job-tasks`"
    ),
    ("handlers.pipeline", "handlers.late.arrivals"): (
        "the late-arrivals stage (and the gate's modules it needs) load on the first late file"
    ),
    ("handlers.validation.sandbox.worker", "handlers.validation.sandbox.tf_ops"): (
        "TensorFlow: imported in the worker only after its resource limits are set"
    ),
    ("handlers.validation.sandbox.worker", "handlers.validation.sandbox.confine"): (
        "imported in the worker after TensorFlow has loaded, right before confinement"
    ),
}
WORKER = {  # run only inside the sandbox worker process (they import TensorFlow)
    "handlers.validation.sandbox.worker",
    "handlers.validation.sandbox.tf_ops",
    "handlers.validation.sandbox.checks",
    "handlers.validation.sandbox.feeds",
    "handlers.validation.sandbox.keras_load",
    "handlers.validation.sandbox.confine",
}
SHARED_WITH_WORKER = {  # leaves the worker may import: no I/O, no heavy imports
    "handlers.validation.sandbox.protocol",
    "handlers.validation.scan.h5",
    "handlers.errors",
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Every handlers module `path` imports (relative imports resolved), as dotted names."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(path)[: len(_package(path)) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("handlers", "main")}


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in [*HANDLERS.rglob("*.py"), ROOT / "main.py"]}


def _graph(*, top_level_only: bool = False) -> dict[str, set[str]]:
    """Module -> the handlers modules it imports. Packages' `__init__` files are left out as
    targets: importing a leaf runs them, and they are all docstrings only."""
    modules = _modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    return {
        name: {t for t in _imports(path, top_level_only=top_level_only) if t in modules}
        - packages
        - {name}
        for name, path in modules.items()
    }


def _top_level_graph() -> dict[str, set[str]]:
    """Only imports that run when the module is imported (not those inside functions)."""
    return _graph(top_level_only=True)


def _part(module: str) -> str | None:
    for part, prefixes in PARTS.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return part
    return None


def _against_the_table() -> set[tuple[str, str]]:
    graph = _graph()
    return {
        (src, dst)
        for src, targets in graph.items()
        for dst in targets
        if _part(src) != _part(dst) and _part(dst) not in ALLOWED.get(_part(src) or "", frozenset())
    }


def test_every_module_has_a_part_in_the_layering() -> None:
    unplaced = [m for m in _modules() if _part(m) is None and m != "handlers"]
    assert unplaced == [], "add it to PARTS"


def test_arrows_run_only_in_the_directions_the_table_allows() -> None:
    wrong = _against_the_table() - EXCEPTIONS.keys()
    assert wrong == set(), "an import against the layering: " + ", ".join(
        f"{src} ({_part(src)}) -> {dst} ({_part(dst)})" for src, dst in sorted(wrong)
    )


def test_every_named_exception_is_still_needed() -> None:
    """A fixed arrow leaves the list; the exceptions only shrink."""
    assert EXCEPTIONS.keys() - _against_the_table() == set()


def test_imports_run_at_module_import_unless_named_for_their_cost() -> None:
    full, top = _graph(), _top_level_graph()
    deferred = {(src, dst) for src in full for dst in full[src] - top[src]}
    assert deferred - DEFERRED.keys() == set(), "import it at the top, or name why it waits"
    assert DEFERRED.keys() - deferred == set(), "no longer deferred: drop it from DEFERRED"


def test_the_product_imports_no_stand_ins_tests_or_tools() -> None:
    outside = ("emulators", "dev", "bench", "tests", "main")
    found = {
        f"{path.relative_to(ROOT)} -> {name}"
        for path in HANDLERS.rglob("*.py")
        for name in _imported_names(path)
        if name.split(".")[0] in outside
    }
    assert found == set()


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return names


def test_no_import_cycles() -> None:
    """Counting every import: inside functions and under TYPE_CHECKING too."""
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_the_function_and_the_worker_never_import_the_cli() -> None:
    graph = _graph()
    offenders = {
        (src, dst)
        for src, targets in graph.items()
        for dst in targets
        if dst.startswith("handlers.cli") and not src.startswith("handlers.cli")
    }
    assert offenders == set()


def test_worker_modules_import_only_worker_modules_and_shared_leaves() -> None:
    graph = _graph()
    for module in WORKER:
        assert graph[module] <= WORKER | SHARED_WITH_WORKER, module


def test_nothing_outside_the_worker_imports_worker_modules() -> None:
    graph = _graph()
    for src, targets in graph.items():
        if src not in WORKER:
            assert not targets & WORKER, f"{src} imports {sorted(targets & WORKER)} (TensorFlow)"


def test_the_graph_is_read_at_all() -> None:
    """Guards the other tests against passing vacuously (e.g. if import syntax changes)."""
    graph = _graph()
    assert "handlers.errors" in graph["handlers.pipeline"]
    assert "handlers.pipeline" in graph["main"]
    assert "handlers.validation.validator" in graph["handlers.pipeline"]  # inside a function
    assert "handlers.validation.sandbox.protocol" in graph["handlers.validation.sandbox.worker"]
    assert (
        "handlers.validation.sandbox.tf_ops"
        not in _top_level_graph()["handlers.validation.sandbox.worker"]
    )  # imported inside main(), after the resource limits


def test_package_inits_are_docstrings_only() -> None:
    for path in HANDLERS.rglob("__init__.py"):
        body = ast.parse(path.read_text()).body
        assert len(body) <= 1 and all(isinstance(n, ast.Expr) for n in body), path


def test_every_module_is_on_the_map() -> None:
    import handlers

    house_map = handlers.__doc__ or ""
    missing = [
        path.relative_to(HANDLERS).as_posix()
        for path in HANDLERS.rglob("*.py")
        if path.name != "__init__.py"
        and "serving_registry" not in path.parts
        and path.stem not in house_map
    ]
    assert missing == [], "add them to the map in handlers/__init__.py"


def test_the_distribution_ships_every_package_under_its_own_name() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"gcs_model_registrar": "handlers"}
    packages = {
        _module(p.parent / "__init__.py").replace("handlers", "gcs_model_registrar", 1)
        for p in HANDLERS.rglob("__init__.py")
    }
    assert set(config["packages"]) == packages


def test_handlers_imports_itself_only_relatively() -> None:
    """So the same files work as `handlers` (the function's source) and as the installed
    `gcs_model_registrar` (pip install .)."""
    absolute = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in HANDLERS.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "handlers"
        )
        or (
            isinstance(node, ast.Import)
            and any(a.name.split(".")[0] == "handlers" for a in node.names)
        )
    ]
    assert absolute == []


def test_the_house_map_shows_the_same_layering_table() -> None:
    """The table a reader sees (handlers/__init__.py) is the one enforced here."""
    import re

    import handlers

    shown = {
        match["part"]: frozenset(p.strip() for p in match["to"].split(","))
        for match in re.finditer(
            r"^    (?P<part>[a-z]+)/? .*?-> (?P<to>[a-z, ]+?)(?:\s{2,}\(.*)?$",
            handlers.__doc__ or "",
            re.MULTILINE,
        )
    }
    assert shown == ALLOWED
