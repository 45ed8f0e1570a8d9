"""The op allowlist applied to every node of a SavedModel: the graph and every function of its
library, reachable or not (functions can be called by name as ops, or through attributes nested
in other attributes). Runs in the function process, on the parsed protobuf (no TensorFlow).

An op passes when it is in `op_allowlist.ALLOWED`, is a call of a library function by name (the
function is checked as a place of its own), or is CONDITIONAL and in its one accepted shape:

* `InitializeTableFromTextFile(V2)`: its file name must be the SavedModel's own asset, i.e. come
  from a `Placeholder` listed in `asset_file_def` and in no signature's inputs (TF Serving feeds
  it `<dir>/assets/<file>` when it runs the init op),
  directly or through the resource variable `tf.saved_model.save` keeps asset paths in (assigned
  only from that placeholder, read only), passed down through function-call arguments.
  A file name from a constant, an input or anything else could name any file (/etc/passwd).
* `PrintV2`: only to stderr/stdout/the log, not `file://…`.

Checkpoint ops (`op_allowlist.SAVER_ONLY`) pass only inside the saver functions, whose structure
`scan.saver` checks instead.
"""

from __future__ import annotations

from typing import Any

from ...errors import Rejected
from . import op_allowlist as allow
from .graph import (
    CALL_OPS,
    GraphIndex,
    Place,
    Source,
    attr,
    data_inputs,
)

_STREAMS = frozenset({b"", b"stderr", b"stdout", b"log(info)", b"log(warning)", b"log(error)"})
_VAR_READERS = frozenset({"ReadVariableOp", "VarIsInitializedOp"})
_MAX_DEPTH = 16
_SHOWN = 6


def check_ops(index: GraphIndex, saver_functions: frozenset[str]) -> None:
    """Raise `Rejected(savedmodel.disallowed_op)` naming every op outside the allowlist."""
    assets = _AssetPaths(index)
    found: dict[tuple[str, str], list[str]] = {}  # (op, why) -> places
    for place in index.places:
        if place.name in saver_functions:
            continue  # scan.saver checks these node by node
        for node in place.nodes:
            why = _problem(index, place, node, assets)
            if why:
                found.setdefault((node.op, why), []).append(
                    f"{node.name!r} in {_where(index, place)}"
                )
    if found:
        raise Rejected(_message(found), code="savedmodel.disallowed_op")


def _problem(index: GraphIndex, place: Place, node: Any, assets: _AssetPaths) -> str | None:
    op = node.op
    if op in allow.ALLOWED or op in index.functions:
        return None
    if op in allow.SAVER_ONLY:
        return "checkpoint op outside the save/restore functions the saver_def names"
    rule = allow.CONDITIONAL.get(op)
    if rule == "asset_file":
        filename = data_inputs(node)[1:2]
        if filename and assets.is_asset(index.trace(place, filename[0])):
            return None
        return "reads a text file that is not one of the SavedModel's assets/ files"
    if rule == "std_stream":
        stream = attr(node, "output_stream")
        if stream is None or stream.s in _STREAMS:
            return None
        return f"prints to {stream.s[:60]!r}, not to stderr/stdout/the log"
    reason = allow.DENIED.get(op)
    if reason is None:
        return f"not an op of TensorFlow {allow.TF_VERSION}"
    return allow.REASONS[reason]


def _where(index: GraphIndex, place: Place) -> str:
    """'the graph', or the function and how it is reached (first caller), for the message."""
    if place.is_graph:
        return place.describe()
    refs = index.references.get(place.name, [])
    if not refs:
        return f"{place.describe()}, which nothing calls"
    ref = refs[0]
    if ref.how == "gradient":
        return f"{place.describe()}, a registered gradient"
    how = "by op name" if ref.how == "op" else f"through attribute {ref.how!r}"
    caller = "the graph" if ref.place.is_graph else repr(ref.place.name)
    return f"{place.describe()}, called {how} from {caller}"


def _message(found: dict[tuple[str, str], list[str]]) -> str:
    parts = []
    for (op, why), where in list(found.items())[:_SHOWN]:
        more = f" and {len(where) - 1} more" if len(where) > 1 else ""
        parts.append(f"{op} ({why}; node {where[0]}{more})")
    if len(found) > _SHOWN:
        parts.append(f"… {len(found) - _SHOWN} more")
    return (
        "The SavedModel uses op(s) a served model may not contain: "
        + "; ".join(parts)
        + ". Only ops pure inference needs are accepted (math, nn, array, control flow, "
        "variables, lookups of the model's own assets); export the model with "
        "tf.saved_model.save or model.export without data pipelines, file I/O, debug or "
        "summary ops, py_function or TPU/XLA-only ops."
    )


class _AssetPaths:
    """Decides whether a tensor is the path of one of the SavedModel's asset files."""

    def __init__(self, index: GraphIndex) -> None:
        self.index = index
        graph = index.graph
        names = {info.tensor_info.name for info in index.meta.asset_file_def}
        # A signature input listed as an asset would let a request name the file.
        fed = {
            t.value.name.partition(":")[0]
            for entry in index.meta.signature_def
            for t in entry.value.inputs
        }
        self.placeholders = {
            name.partition(":")[0]
            for name in names
            if name.partition(":")[2] in ("", "0")
            and name.partition(":")[0] not in fed
            and getattr(graph.by_name.get(name.partition(":")[0]), "op", None) == "Placeholder"
        }
        self.variables = self._asset_variables()

    def _asset_variables(self) -> set[str]:
        """VarHandleOps of the graph that hold an asset path: assigned only from an asset
        placeholder, otherwise only read, used by nothing else, and no other VarHandleOp
        anywhere shares their resource name."""
        index, graph = self.index, self.index.graph
        shared: dict[bytes, int] = {}
        for place in index.places:
            for node in place.nodes:
                if node.op == "VarHandleOp":
                    key = _shared_name(node)
                    shared[key] = shared.get(key, 0) + 1
        found = set()
        for node in graph.nodes:
            if node.op != "VarHandleOp" or shared[_shared_name(node)] != 1:
                continue
            assigned = False
            for user, position in index.users(graph, node.name):
                if user.op in _VAR_READERS and position == 0:
                    continue
                if user.op == "AssignVariableOp" and position == 0:
                    value = index.trace(graph, data_inputs(user)[1])
                    if value is not None and value.node is not None:
                        if value.node.name in self.placeholders:
                            assigned = True
                            continue
                break
            else:
                if assigned:
                    found.add(node.name)
        return found

    def is_asset(self, source: Source | None, depth: int = 0) -> bool:
        if source is None or depth > _MAX_DEPTH:
            return False
        place = source.place
        if source.node is not None:
            if not place.is_graph:
                return False
            node = source.node
            if node.name in self.placeholders:
                return True
            if node.op == "ReadVariableOp":
                var = self.index.trace(place, data_inputs(node)[0])
                return bool(var and var.node is not None and var.node.name in self.variables)
            return False
        # A function argument: every caller must pass an asset path in that position.
        position = source.arg_index
        callers = self.index.references.get(place.name, [])
        if position < 0 or not callers:
            return False
        for ref in callers:
            if ref.node is None or not (
                ref.how == "op" or (ref.how == "f" and ref.node.op in CALL_OPS)
            ):
                return False
            inputs = data_inputs(ref.node)
            if position >= len(inputs):
                return False
            if not self.is_asset(self.index.trace(ref.place, inputs[position]), depth + 1):
                return False
        return True


def _shared_name(node: Any) -> bytes:
    value = attr(node, "shared_name")
    return value.s if value is not None and value.s else node.name.encode()
