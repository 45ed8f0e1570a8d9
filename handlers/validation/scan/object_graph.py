"""The SavedObjectGraph of a SavedModel: what `tf.saved_model.load` wires, held to the graph's rules.

Runs in the function process on the protobuf subset of `scan.proto` (no TensorFlow), after the
graph checks (`scan.graph_checks`). TF Serving's C++ loader runs the MetaGraph; the Python loader
(`tf.saved_model.load`: the sandbox, Keras' `TFSMLayer`, `hub.KerasLayer`, any later consumer)
does not run the graph's nodes at all. It rebuilds objects from `meta_graph_def.object_graph_def`
and calls library functions directly, feeding each concrete function's captured inputs (its last
arguments) from the objects its `bound_inputs` name: an asset (the path
`assets/<asset_file_def[i].filename>`), a constant (the `value` of the graph node its `operation`
names), a variable (restored from `variables/`), a resource (made by its `_create_resource`
function, filled by its `_initialize` function, which the loader calls), or a tensor of another
function (`captured_tensor`). The graph the other checks read can stay untouched while those
bindings point elsewhere, so this module reads the same structure the loader reads:

* Structure (`savedmodel.object_graph_mismatch`): every kind is one the loader builds; every
  reference (children, dependencies, slot variables, save/restore functions, bound inputs) names
  an object; functions exist in the library and in `concrete_functions`, with no more bound inputs
  than arguments; a bound input is an asset, constant, variable, resource or captured tensor; a
  constant names a graph `Const`; a resource's functions are functions; `registered_name` is one
  TensorFlow writes and `registered_saver` is empty (a registered class or saver would run code
  the scan cannot see).
* Paths (`savedmodel.object_graph_path`): every input that reaches a file-name argument
  (`PATH_INPUTS`) comes, in the loader's wiring, from an asset object naming one of the upload's
  own `assets/` files (never from a constant, variable, resource, captured tensor or call
  argument), and no function the loader can call reaches a checkpoint op.
* Agreement (`savedmodel.object_graph_mismatch`): where the graph calls a function the loader also
  calls, each captured input is the same thing in both views (the same asset file, the same
  `Const`, a variable, a resource).

A SavedModel without an object graph (TF1) is loaded by running its graph, which the graph checks
cover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from ...errors import Rejected
from ...object_names import name_problem
from . import op_allowlist as allow
from .graph import CALL_OPS, GraphIndex, Source, data_inputs
from .saver import saver_functions

# The file-name argument of each op the op allowlist lets read a file ("asset_file" rule).
PATH_INPUTS = {"InitializeTableFromTextFile": 1, "InitializeTableFromTextFileV2": 1}
# registered_name -> the kind it may carry: the classes TensorFlow itself registers and writes.
REGISTERED = {"": None, "tf.StaticHashTable": "resource", "tf.TrackableConstant": "constant"}
BINDABLE = frozenset({"asset", "constant", "variable", "resource", "captured_tensor"})
_FUNCTION_KINDS = frozenset({"function", "bare_concrete_function"})
_RESOURCE_FUNCTIONS = ("_create_resource", "_initialize", "_destroy_resource")
MAX_OBJECTS = 500_000  # EfficientNetB7's Keras export has ~2,000
_MAX_DEPTH = 16
_FIX = (
    "Export the model again with tf.saved_model.save or model.export, unedited, and keep any "
    "file it reads (vocabularies) as a tf.saved_model.Asset."
)


def check_object_graph(root: Path, index: GraphIndex) -> list[str]:
    """Raise `Rejected` (`savedmodel.object_graph_mismatch`, `savedmodel.object_graph_path`)
    unless the object graph wires only what the graph checks verified; notes for the report."""
    meta = index.meta
    if not meta.HasField("object_graph_def"):
        return []
    view = _ObjectView(root, index)
    view.check_structure()
    view.check_paths()
    view.check_agreement()
    return [f"object graph: {len(view.nodes)} objects, {len(view.concrete)} concrete functions"]


class _ObjectView:
    def __init__(self, root: Path, index: GraphIndex) -> None:
        self.root = root
        self.index = index
        graph = index.meta.object_graph_def
        self.nodes = list(graph.nodes)
        if not self.nodes:
            _mismatch("it has no objects (tf.saved_model.load needs at least the root object)")
        if len(self.nodes) > MAX_OBJECTS:
            _mismatch(f"it has {len(self.nodes):,} objects; the limit is {MAX_OBJECTS:,}")
        self.kinds = [n.WhichOneof("kind") for n in self.nodes]
        # A protobuf map keeps the last entry of a key; so does this.
        self.concrete = {e.key: list(e.value.bound_inputs) for e in graph.concrete_functions}
        self.assets = list(index.meta.asset_file_def)
        self._seen: set[tuple[str, int]] = set()  # (function, argument) traced for a path

    # ---- structure -----------------------------------------------------------------------

    def check_structure(self) -> None:
        for number, (node, kind) in enumerate(zip(self.nodes, self.kinds, strict=True)):
            self._check_object(number, node, kind)
        for name, bound in self.concrete.items():
            fn = self.index.functions.get(name)
            if fn is None:
                _mismatch(f"concrete function {_q(name)} is not in the graph's function library")
            args = len(fn.signature.input_arg)
            if len(bound) > args:
                _mismatch(
                    f"concrete function {_q(name)} binds {len(bound)} captured inputs but takes "
                    f"{args} arguments"
                )
            for node_id in bound:
                self._ref(node_id, f"a bound input of concrete function {_q(name)}")
                if self.kinds[node_id] not in BINDABLE:
                    _mismatch(
                        f"concrete function {_q(name)} binds object {node_id}, a "
                        f"{self.kinds[node_id]}, as a captured input (the loader feeds only "
                        "assets, constants, variables, resources and captured tensors)"
                    )

    def _check_object(self, number: int, node: Any, kind: str | None) -> None:
        what = f"object {number}"
        if kind is None:
            _mismatch(f"{what} has no kind the loader knows")
        if node.registered_name not in REGISTERED or REGISTERED[node.registered_name] not in (
            None,
            kind,
        ):
            _mismatch(
                f"{what} (a {kind}) is registered as {_q(node.registered_name)}, which "
                "the loader would build with a class the scan cannot check"
            )
        if node.registered_saver:
            _mismatch(
                f"{what} names the registered checkpoint saver "
                f"{_q(node.registered_saver)}, which would restore it with code the scan "
                "cannot check"
            )
        for ref in [*node.children, *node.dependencies]:
            self._ref(ref.node_id, f"a child of {what}")
        for slot in node.slot_variables:
            self._ref(slot.original_variable_node_id, f"a slot variable of {what}")
            self._ref(slot.slot_variable_node_id, f"a slot variable of {what}")
        for entry in node.saveable_objects:
            for fn_id in (entry.value.save_function, entry.value.restore_function):
                self._ref(fn_id, f"a save/restore function of {what}")
                if self.kinds[fn_id] not in _FUNCTION_KINDS:
                    _mismatch(f"{what}'s save/restore function is object {fn_id}, not a function")
        if kind == "asset":
            self.asset_file(number, node.asset.asset_file_def_index)
        elif kind == "constant":
            op = node.constant.operation
            target = self.index.graph.by_name.get(op)
            if target is None or target.op != "Const" or "value" not in target.attr:
                _mismatch(f"constant {what} names {_q(op)}, which is not a Const of the graph")
        elif kind == "function":
            for name in node.function.concrete_functions:
                self._concrete(name, what)
        elif kind == "bare_concrete_function":
            self._concrete(node.bare_concrete_function.concrete_function_name, what)
        elif kind == "captured_tensor":
            name = node.captured_tensor.concrete_function
            if name not in self.index.functions:
                _mismatch(f"captured tensor {what} comes from {_q(name)}, not a library function")
        elif kind == "resource":
            for child in node.children:
                if child.local_name in _RESOURCE_FUNCTIONS and (
                    self.kinds[child.node_id] not in _FUNCTION_KINDS
                ):
                    _mismatch(f"resource {what}'s {child.local_name} is not a function")

    def _ref(self, node_id: int, what: str) -> None:
        if not 0 <= node_id < len(self.nodes):
            _mismatch(f"{what} is object {node_id}; there are {len(self.nodes)}")

    def _concrete(self, name: str, what: str) -> None:
        if name not in self.concrete or name not in self.index.functions:
            _mismatch(
                f"{what} names concrete function {_q(name)}, which is not in both the "
                "object graph's concrete functions and the function library"
            )

    def asset_file(self, number: int, position: int) -> str:
        """The file `assets/<name>` asset object `number` makes the loader pass; rejected unless
        it is a plain file of the upload's assets/."""
        if not 0 <= position < len(self.assets):
            _path(
                f"asset object {number} points to asset entry {position}, but the MetaGraph "
                f"lists {len(self.assets)}"
            )
        name = self.assets[position].filename
        problem = name_problem(name) if name else "it is empty"
        if problem or not (self.root / "assets" / name).is_file():
            _path(
                f"asset object {number} names {_q(name)}, which is not a file of assets/ "
                f"({problem or 'missing'})"
            )
        return name

    # ---- paths -----------------------------------------------------------------------------

    def check_paths(self) -> None:
        index = self.index
        checkpoint = self._reaching_checkpoint_ops()
        for name in self.concrete:
            if name in checkpoint:
                _path(
                    f"the loader can call function {_q(name)}, which reaches the checkpoint "
                    f"{checkpoint[name]} (it reads or writes files its caller names)"
                )
        for place in index.places:
            for node in place.nodes:
                position = PATH_INPUTS.get(node.op)
                if position is None:
                    continue
                inputs = data_inputs(node)
                if position >= len(inputs):
                    _path(f"{node.op} node {_q(node.name)} has no file-name input")
                where = (
                    f"the file name of {node.op} node {_q(node.name)} in {place.describe()[:120]}"
                )
                self._path_source(index.trace(place, inputs[position]), where, 0)

    def _reaching_checkpoint_ops(self) -> dict[str, str]:
        """Library functions that are, or call (by attribute or op name, however deep), the
        saver's functions or a checkpoint op -> what they reach; one pass over the callers."""
        index = self.index
        found: dict[str, str] = {name: "function the saver_def names"
                                 for name in saver_functions(index)}  # fmt: skip
        for place in index.places[1:]:
            ops = sorted({n.op for n in place.nodes if n.op in allow.SAVER_ONLY})
            if ops and place.name not in found:
                found[place.name] = f"op(s) {ops}"
        stack = list(found)
        while stack:
            name = stack.pop()
            for ref in index.references.get(name, []):
                caller = ref.place.name
                if not ref.place.is_graph and caller not in found:
                    found[caller] = f"{found[name]} through {_q(name)}"[:300]
                    stack.append(caller)
        return found

    def _path_source(self, source: Source | None, where: str, depth: int) -> None:
        """A file name must come, in the loader's wiring, from an asset object (the graph's
        wiring is `scan.ops`'s)."""
        if source is None or depth > _MAX_DEPTH:
            _path(f"{where} comes from nothing the scan can follow")
        place = source.place
        if source.node is not None:
            if place.is_graph:
                return  # run by TF1 loaders and TF Serving only: checked by scan.ops
            _path(f"{where} is computed inside the function ({source.node.op})")
        position = source.arg_index
        if (place.name, position) in self._seen:
            return  # every way here was or is being checked
        self._seen.add((place.name, position))
        bound = self.concrete.get(place.name)
        if bound is not None:
            first = len(self.index.functions[place.name].signature.input_arg) - len(bound)
            if position < first:
                _path(
                    f"{where} is argument {position} of {_q(place.name)}, which the loader "
                    "lets its caller choose"
                )
            node_id = bound[position - first]
            kind = self.kinds[node_id]
            if kind != "asset":
                _path(f"{where} is bound, in the object graph, to {self._describe(node_id)}")
        for ref in self.index.references.get(place.name, []):
            if ref.place.is_graph or ref.node is None:
                continue  # graph callers: scan.ops and check_agreement
            if ref.how == "op" or (ref.how == "f" and ref.node.op in CALL_OPS):
                inputs = data_inputs(ref.node)
                if position < len(inputs):
                    source = self.index.trace(ref.place, inputs[position])
                    self._path_source(source, where, depth + 1)
                    continue
            _path(
                f"{where} is passed in by {ref.place.describe()[:120]} in a way the scan cannot follow"
            )

    def _describe(self, node_id: int) -> str:
        node, kind = self.nodes[node_id], self.kinds[node_id]
        if kind == "constant":
            return f"constant {node_id} (graph node {_q(node.constant.operation)})"
        if kind == "variable":
            return f"variable {node_id} ({_q(node.variable.name)}, restored from variables/)"
        if kind == "captured_tensor":
            return f"captured tensor {node_id} ({_q(node.captured_tensor.name)})"
        return f"{kind} object {node_id}, not an asset file"

    # ---- agreement ---------------------------------------------------------------------------

    def check_agreement(self) -> None:
        """Each graph call of a function the loader also calls passes, in each captured
        position, what the object graph binds there."""
        index = self.index
        graph = index.graph
        placeholders = {a.tensor_info.name.partition(":")[0]: a.filename for a in self.assets}
        held = _asset_variables(index, placeholders)
        for name, bound in self.concrete.items():
            if not bound:
                continue
            first = len(index.functions[name].signature.input_arg) - len(bound)
            for ref in index.references.get(name, []):
                if not ref.place.is_graph or ref.node is None:
                    continue
                inputs = data_inputs(ref.node)
                for offset, node_id in enumerate(bound):
                    position = first + offset
                    source = (
                        index.trace(graph, inputs[position]) if position < len(inputs) else None
                    )
                    graph_view = _graph_kind(source, placeholders, held)
                    object_view = self._object_kind(node_id)
                    if not _agree(graph_view, object_view):
                        _mismatch(
                            f"graph node {_q(ref.node.name)} passes {_say(graph_view)} to "
                            f"{_q(name)} as captured input {offset}, where the object graph binds "
                            f"{_say(object_view)}"
                        )

    def _object_kind(self, node_id: int) -> tuple[str, str]:
        node, kind = self.nodes[node_id], self.kinds[node_id]
        if kind == "asset":
            return kind, self.assets[node.asset.asset_file_def_index].filename
        if kind == "constant":
            return kind, node.constant.operation
        return kind or "", ""


def _asset_variables(index: GraphIndex, placeholders: dict[str, str]) -> dict[str, str]:
    """Graph VarHandleOps assigned from an asset placeholder -> that asset's file name
    (`tf.saved_model.save` keeps asset paths in such a variable; `scan.ops` checks the rest)."""
    held: dict[str, str] = {}
    graph = index.graph
    for node in graph.nodes:
        if node.op != "AssignVariableOp":
            continue
        inputs = data_inputs(node)
        var = index.trace(graph, inputs[0]) if inputs else None
        value = index.trace(graph, inputs[1]) if len(inputs) > 1 else None
        if (
            var is not None
            and value is not None
            and var.node is not None
            and value.node is not None
        ):
            if value.node.name in placeholders:
                held[var.node.name] = placeholders[value.node.name]
    return held


def _graph_kind(
    source: Source | None, placeholders: dict[str, str], held: dict[str, str]
) -> tuple[str, str]:
    if source is None or source.node is None:
        return "unknown", ""
    node = source.node
    if node.op == "Placeholder" and node.name in placeholders:
        return "asset", placeholders[node.name]
    if node.op == "ReadVariableOp" and node.input:
        var = data_inputs(node)[:1]
        name = var[0].partition(":")[0] if var else ""
        if name in held:
            return "asset", held[name]
    if node.op == "Const":
        return "constant", node.name
    if node.op == "VarHandleOp":
        return "variable", node.name
    if node.op == "Placeholder":
        return "input", node.name
    return "op", node.op


def _agree(graph_view: tuple[str, str], object_view: tuple[str, str]) -> bool:
    kind, detail = graph_view
    obj_kind, obj_detail = object_view
    if kind == "asset" or obj_kind == "asset":
        return kind == obj_kind and detail == obj_detail
    if kind == "constant" or obj_kind == "constant":
        return kind == obj_kind and detail == obj_detail
    if obj_kind == "variable":
        return kind == "variable"
    if obj_kind in ("resource", "captured_tensor"):
        return kind == "op"
    return False


def _say(view: tuple[str, str]) -> str:
    kind, detail = view
    return {
        "asset": f"asset file {_q(detail)}",
        "constant": f"constant {_q(detail)}",
        "variable": "a variable",
        "input": f"placeholder {_q(detail)}",
        "op": f"the output of a {detail[:40]} op",
        "resource": "a resource",
        "captured_tensor": "a captured tensor",
    }.get(kind, f"{kind or 'nothing the scan can follow'}")


def _q(text: str) -> str:
    """A name from the upload, quoted and cut short (it goes into the record)."""
    return repr(text[:80])


def _mismatch(what: str) -> NoReturn:
    raise Rejected(
        f"The SavedModel's object graph, which tf.saved_model.load follows, does not match what "
        f"the scan checked: {what}. {_FIX}",
        code="savedmodel.object_graph_mismatch",
    )


def _path(what: str) -> NoReturn:
    raise Rejected(
        f"The SavedModel's object graph would make tf.saved_model.load read a file that is not "
        f"one of the model's own assets/ files: {what}. {_FIX}",
        code="savedmodel.object_graph_path",
    )
