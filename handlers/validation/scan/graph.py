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


class Node:
    """A NodeDef read once into Python values (protobuf field access costs ~5 us a time):
    name, op, inputs, attributes by key (the AttrValue messages), the DataType values each
    attribute sets, and the functions its attributes name, however nested."""

    __slots__ = ("attr", "funcs", "input", "name", "op", "types")

    def __init__(self, node: Any) -> None:
        self.name: str = node.name
        self.op: str = node.op
        self.input: list[str] = list(node.input)
        self.attr: dict[str, Any] = {}
        self.types: dict[str, tuple[int, ...]] = {}
        self.funcs: list[tuple[str, str]] = []
        for entry in node.attr:
            key, value = entry.key, entry.value
            self.attr[key] = value
            if value.type:
                self.types[key] = (value.type,)
            if value.HasField("list"):
                listed = value.list
                if listed.type:
                    self.types[key] = tuple(listed.type)
                if listed.func:
                    self.funcs.extend(_funcs(key, listed.func))
            if value.HasField("func"):
                self.funcs.extend(_funcs(key, [value.func]))


def _funcs(key: str, funcs: Any) -> list[tuple[str, str]]:
    """(attribute, name) of these NameAttrLists and of every function their attributes name."""
    found: list[tuple[str, str]] = []
    stack = list(funcs)
    while stack:
        func = stack.pop()
        if func.name:
            found.append((key, func.name))
        for inner in func.attr:
            value = inner.value
            if value.HasField("func"):
                stack.append(value.func)
            if value.HasField("list"):
                stack.extend(value.list.func)
    return found


@dataclass
class Place:
    """The graph (`name == GRAPH`, no args) or one library function."""

    name: str
    nodes: list[Node]
    args: list[str] = field(default_factory=list)
    by_name: dict[str, Node] = field(default_factory=dict)

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
        self.graph = Place(GRAPH, [Node(n) for n in graph_def.node])
        self.places = [self.graph]
        for name, fn in self.functions.items():
            args = [a.name for a in fn.signature.input_arg]
            self.places.append(Place(name, [Node(n) for n in fn.node_def], args))
        self.references: dict[str, list[Reference]] = defaultdict(list)
        self.consumers: dict[tuple[str, str], list[tuple[Any, int]]] = defaultdict(list)
        for place in self.places:
            for node in place.nodes:
                place.by_name[node.name] = node
                for how, name in node.funcs:
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


def _producer(text: str) -> str:
    return text.lstrip("^").partition(":")[0]


def attr(node: Node | None, key: str) -> Any | None:
    """The AttrValue of `node`'s attribute `key`, or None."""
    return node.attr.get(key) if node is not None else None
