"""An index of a parsed MetaGraph: every place nodes live (the graph and each library function),
who calls each function (by a function attribute, nested or not, or by op name), and tracing of
an input back to the node or function argument it comes from.

Runs in the function process on the protobuf subset of `scan.proto` (no TensorFlow). Shared by the
op allowlist (`scan.ops`), the saver check (`scan.saver`) and the serving-runtime check
(`scan.serving_ops`); building it is linear in the number of nodes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

GRAPH = "graph"
CALL_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall"})
_PASS_THROUGH = frozenset({"Identity", "Snapshot"})
_MAX_TRACE = 64


@dataclass
class Place:
    """The graph (`name == GRAPH`, no args) or one library function."""

    name: str
    nodes: list[Any]
    args: list[str] = field(default_factory=list)
    by_name: dict[str, Any] = field(default_factory=dict)

    @property
    def is_graph(self) -> bool:
        return self.name == GRAPH

    def describe(self) -> str:
        return "the graph" if self.is_graph else f"library function {self.name!r}"


@dataclass(frozen=True)
class Source:
    """Where a node input comes from: a function argument (`arg`) or a node's output."""

    place: Place
    arg: str | None = None
    node: Any = None
    output: str = "0"  # "0".."n" in the graph; "out:i" in a function

    @property
    def arg_index(self) -> int:
        return self.place.args.index(self.arg) if self.arg is not None else -1


@dataclass(frozen=True)
class Reference:
    """`node` in `place` refers to a function: through attribute `how`, or `how == "op"`."""

    place: Place
    node: Any
    how: str


class GraphIndex:
    def __init__(self, meta: Any) -> None:
        self.meta = meta
        graph_def = meta.graph_def
        self.functions = {f.signature.name: f for f in graph_def.library.function}
        self.graph = Place(GRAPH, list(graph_def.node))
        self.places = [self.graph]
        for name, fn in self.functions.items():
            args = [a.name for a in fn.signature.input_arg]
            self.places.append(Place(name, list(fn.node_def), args))
        self.references: dict[str, list[Reference]] = defaultdict(list)
        self.consumers: dict[tuple[str, str], list[tuple[Any, int]]] = defaultdict(list)
        for place in self.places:
            for node in place.nodes:
                place.by_name[node.name] = node
                for how, name in function_refs(node):
                    self.references[name].append(Reference(place, node, how))
                if node.op in self.functions:
                    self.references[node.op].append(Reference(place, node, "op"))
                for position, text in enumerate(node.input):
                    self.consumers[(place.name, _producer(text))].append((node, position))
        for grad in graph_def.library.gradient:
            for name in (grad.function_name, grad.gradient_func):
                self.references[name].append(Reference(self.graph, None, "gradient"))
        self.place = {p.name: p for p in self.places}

    def source(self, place: Place, text: str) -> Source | None:
        """The producer of input `text` of a node in `place` (None: control input or unknown)."""
        if text.startswith("^"):
            return None
        if place.is_graph:
            name, _, index = text.partition(":")
            node = place.by_name.get(name)
            return Source(place, node=node, output=index or "0") if node is not None else None
        name, _, output = text.partition(":")
        if not output and name in place.args:
            return Source(place, arg=name)
        node = place.by_name.get(name)
        return Source(place, node=node, output=output) if node is not None else None

    def trace(self, place: Place, text: str) -> Source | None:
        """`source`, looking through Identity nodes."""
        found = self.source(place, text)
        for _ in range(_MAX_TRACE):
            if found is None or found.node is None or found.node.op not in _PASS_THROUGH:
                return found
            data = [i for i in found.node.input if not i.startswith("^")]
            found = self.source(place, data[0]) if data else None
        return None

    def users(self, place: Place, node_name: str) -> list[tuple[Any, int]]:
        """(node, input position) of every input in `place` naming `node_name` (control too)."""
        return self.consumers.get((place.name, node_name), [])


def data_inputs(node: Any) -> list[str]:
    return [i for i in node.input if not i.startswith("^")]


def function_refs(node: Any) -> list[tuple[str, str]]:
    """(attribute, function name) for every function a node's attributes name, however nested
    (a function attribute's own attributes can name functions too)."""
    found: list[tuple[str, str]] = []
    stack = [(entry.key, entry.value) for entry in node.attr]
    while stack:
        key, value = stack.pop()
        funcs = [value.func] if value.func.name else []
        funcs += [f for f in value.list.func if f.name]
        for func in funcs:
            found.append((key, func.name))
            stack.extend((key, inner.value) for inner in func.attr)
    return found


def _producer(text: str) -> str:
    return text.lstrip("^").partition(":")[0]


def attr(node: Any, key: str) -> Any | None:
    for entry in node.attr:
        if entry.key == key:
            return entry.value
    return None
