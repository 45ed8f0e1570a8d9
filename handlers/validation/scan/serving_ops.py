"""Will the serving container's TensorFlow load this graph? And how long is that image available?

Runs in the function process (and the CLI), without TensorFlow: the op registries of the serving
TensorFlow versions are generated data (`serving_registry/tf_<major>_<minor>.py`, written by
`dev/gen_op_lists.py registry` from that version's own wheel).

TensorFlow guarantees forward compatibility only within a patch series. A GraphDef written by 2.21
is served as validated by 2.15 only if every op exists in 2.15 (else: "Op type not registered",
the load fails), every attribute 2.15 requires is there, every dtype is one 2.15 knows and allows,
the GraphDef's `versions` admit 2.15 as a consumer, and every attribute set on a node exists in
2.15's OpDef (saving strips attributes equal to their default, so only non-default ones remain).
That last one does not fail the load in 2.15: it logs "NodeDef mentions attribute grad_a which is
not in the op definition … Unknown attributes will be ignored" and runs the op without it
(measured with tensorflow-cpu 2.15.1; older TF refused, tensorflow/serving#831), so the served
computation is not the validated one; it is rejected all the same.

What is judged is what the serving image runs, not every function in the library
(`serving_places`). TF Serving imports the whole GraphDef, so every node of the graph is checked;
a library function runs only when something that runs calls it: a graph node (signatures, the
saver's restore, `__saved_model_init_op`, through which the object graph's resource initializers
reach serving) naming it by attribute or as its op, or a function already reached doing so,
transitively (While bodies, If branches, nested calls). Functions named only by the object graph
(Python-level methods such as Keras 2's `adapt_step`) or only by `library.gradient` (training) are
never instantiated: measured with tensorflow-cpu 2.15.1's session loader (TF Serving's), a
SavedModel whose unreached functions hold DecodeWebP (no such op in 2.15) or MatMul.grad_a (no
such attribute) loads and serves without a word (tests/validation/tf215). A tf_keras LSTM saved
under TF >= 2.16 carries such gradient functions. The op allowlist (`scan.ops`) still covers every
function, reached or not: a security check may be stricter than this one.

Which version the serving image runs is read from its URI or SERVING_TF_VERSION
(`handlers/serving_images.py`, checked at start-up); the images' lifecycle lives there too.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from ...errors import Rejected
from .graph import GRAPH, GraphIndex, Node

_SHOWN = 8


def available_versions() -> list[str]:
    """Serving TensorFlow versions with a registry in `serving_registry/`."""
    from importlib import resources

    names = resources.files(f"{__package__}.serving_registry").iterdir()
    found = [
        m.group(1).replace("_", ".") for p in names if (m := re.match(r"tf_(\d+_\d+)\.py$", p.name))
    ]
    return sorted(found, key=lambda v: tuple(map(int, v.split("."))))


@dataclass(frozen=True)
class Registry:
    version: str  # e.g. "2.15.1"
    ops: dict[str, dict[str, tuple[bool, frozenset[int]]]]  # op -> attr -> (has default, dtypes)
    dtypes: frozenset[int]
    graph_def_version: int
    min_consumer: int
    min_producer: int


@cache
def registry(version: str) -> Registry:
    """The generated registry of serving TensorFlow `version` ('2.15'), parsed once (~5 ms)."""
    module: Any = importlib.import_module(
        f".serving_registry.tf_{version.replace('.', '_')}", __package__
    )
    ops: dict[str, dict[str, tuple[bool, frozenset[int]]]] = {}
    for line in module.OPS.split("\n"):
        if not line:
            continue
        name, *attrs = line.split(" ")
        spec = {}
        for text in attrs:
            head, _, types = text.partition(":")
            allowed = frozenset(int(t) for t in types.split(",")) if types else frozenset()
            spec[head.rstrip("?")] = (head.endswith("?"), allowed)
        ops[name] = spec
    return Registry(
        module.TF_VERSION,
        ops,
        module.DTYPES,
        module.GRAPH_DEF_VERSION,
        module.GRAPH_DEF_VERSION_MIN_CONSUMER,
        module.GRAPH_DEF_VERSION_MIN_PRODUCER,
    )


def check_serving_compat(index: GraphIndex, version: str) -> None:
    """Raise `Rejected(savedmodel.serving_incompatible)` naming every op, attribute, dtype or
    GraphDef version the serving TensorFlow `version` would refuse."""
    reg = registry(version)
    problems: dict[str, str] = {}  # problem -> first node
    versions = index.meta.graph_def.versions
    if (
        versions.min_consumer > reg.graph_def_version
        or reg.graph_def_version in versions.bad_consumers
    ):
        problems[
            f"GraphDef needs consumer version {versions.min_consumer} (TF {reg.version} is {reg.graph_def_version})"
        ] = "versions"
    if versions.producer < reg.min_producer:
        problems[f"GraphDef producer {versions.producer} is older than TF {reg.version} reads"] = (
            "versions"
        )
    reached = serving_places(index)
    for place in index.places:
        if place.name not in reached:
            continue  # never instantiated by the serving image (see the module docstring)
        for node in place.nodes:
            if node.op in index.functions:
                continue  # a call by name: the function's own nodes are checked
            for problem in _node_problems(node, reg):
                problems.setdefault(problem, f"{node.name!r} in {place.describe()}")
    if not problems:
        return
    shown = [f"{p} (node {where})" for p, where in list(problems.items())[:_SHOWN]]
    if len(problems) > _SHOWN:
        shown.append(f"… {len(problems) - _SHOWN} more")
    raise Rejected(
        f"The serving container runs TensorFlow {reg.version}, which cannot serve this "
        f"SavedModel as validated: {'; '.join(shown)}. Export the model "
        f"with TensorFlow {version} (or without the ops/options named), or serve it with an "
        "image of a newer TensorFlow (SERVING_CONTAINER_IMAGE_URI, SERVING_TF_VERSION).",
        code="savedmodel.serving_incompatible",
    )


def serving_places(index: GraphIndex) -> set[str]:
    """The graph and every library function a graph node reaches, by attribute or op name,
    transitively: what the serving image may instantiate. Linear in nodes plus references."""
    reached = {GRAPH}
    stack = [index.graph]
    while stack:
        place = stack.pop()
        for node in place.nodes:
            names = [name for _, name in node.funcs]
            if node.op in index.functions:
                names.append(node.op)
            for name in names:
                if name in index.functions and name not in reached:
                    reached.add(name)
                    stack.append(index.place[name])
    return reached


def _node_problems(node: Node, reg: Registry) -> list[str]:
    spec = reg.ops.get(node.op)
    if spec is None:
        return [f"op {node.op} does not exist in TF {reg.version} (the load fails)"]
    problems = []
    present = set()
    for key in node.attr:
        if key.startswith("_"):
            continue  # internal attributes: not validated against the OpDef
        present.add(key)
        if key not in spec:
            problems.append(
                f"{node.op} attribute {key!r} does not exist in TF {reg.version}, which "
                "ignores it (it would not run the validated computation)"
            )
            continue
        types = node.types.get(key, ())
        unknown = [t for t in types if t not in reg.dtypes]
        allowed = spec[key][1]
        refused = [t for t in types if allowed and t not in allowed and t not in unknown]
        if unknown:
            problems.append(f"{node.op}.{key}: dtype {unknown[0]} unknown to TF {reg.version}")
        if refused:
            problems.append(f"{node.op}.{key}: dtype {refused[0]} not allowed in TF {reg.version}")
    for key, (has_default, _) in spec.items():
        if not has_default and key not in present:
            problems.append(f"{node.op} lacks attribute {key!r}, which TF {reg.version} requires")
    return problems
