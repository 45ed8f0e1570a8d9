"""The house rules, checked on the import graph (static, from the source): no cycles, and each
module runs where the map in handlers/__init__.py says — the CLI and the worker stay apart."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = ROOT / "handlers"
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
    return {name for name in found if name.split(".")[0] == "handlers"}


def _modules() -> dict[str, Path]:
    return {_module(p): p for p in HANDLERS.rglob("*.py")}


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


def test_no_import_cycles() -> None:
    graph = _top_level_graph()
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


def test_nothing_outside_the_worker_imports_worker_modules_at_import_time() -> None:
    graph = _top_level_graph()
    for src, targets in graph.items():
        if src not in WORKER:
            assert not targets & WORKER, f"{src} imports {sorted(targets & WORKER)} (TensorFlow)"


def test_the_graph_is_read_at_all() -> None:
    """Guards the other tests against passing vacuously (e.g. if import syntax changes)."""
    graph = _graph()
    assert "handlers.errors" in graph["handlers.pipeline"]
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
