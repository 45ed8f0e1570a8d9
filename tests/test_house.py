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


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in HANDLERS.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("handlers"):
                    for alias in node.names:
                        full = f"{node.module}.{alias.name}"
                        targets.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("handlers")}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _top_level_graph() -> dict[str, set[str]]:
    """Only imports that run when the module is imported (not those inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in HANDLERS.rglob("*.py"):
        name = _module(path)
        targets: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handlers"):
                targets |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("handlers")}
        graph[name] = targets
    known = set(graph)
    return {k: {t for t in v if t in known and t != k} for k, v in graph.items()}


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
