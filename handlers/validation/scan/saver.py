"""The saver a SavedModel names (`MetaGraphDef.saver_def`) must have exactly the structure
`tf.saved_model.save` writes; runs in the function process, on the parsed protobuf.

TF Serving restores variables by feeding `<dir>/variables/variables` to the saver's filename
placeholder and running its restore op, so whatever the restore function does runs at load time
with the model's own file prefix, and the file is written by whoever made the upload. What TF
2.12-2.21 write, and all this accepts:

    saver_filename = Placeholder(dtype=string)
    save    = StatefulPartitionedCall(saver_filename, <variables, tables' exports, consts>, f=S)
    restore = StatefulPartitionedCall(saver_filename, <variables, tables>, f=R)

* R holds only Const, RestoreV2, Identity, AssignVariableOp, LookupTableImportV2, NoOp; every
  RestoreV2 reads from R's file-prefix argument exactly, names only tensors in
  variables/variables.index, and its outputs go only into variables/tables passed in as arguments
  (the graph's own VarHandleOps and tables at the call site).
* S holds only the ops of a V2 checkpoint save; every file name it writes is the file prefix plus
  TensorFlow's own suffixes (`_temp/part`, `.part`, shard numbering); it is never run by TF
  Serving, but it is checked all the same.
* Neither function is used by anything else (no other call, no call by op name, no gradient),
  the placeholder feeds only these two calls, and nothing consumes the two calls.

TF1 `tf.compat.v1.train.Saver` graphs (save/restore ops in the graph itself) are rejected.
"""

from __future__ import annotations

import re
from typing import Any, NoReturn

from ...errors import Rejected
from .graph import CALL_OPS, GraphIndex, Place, attr, data_inputs

_RESTORE_OPS = frozenset(
    {"Const", "RestoreV2", "Identity", "AssignVariableOp", "LookupTableImportV2", "NoOp"}
)
_SAVE_OPS = frozenset(
    {
        *("StaticRegexFullMatch", "Const", "Select", "StringJoin", "DisableCopyOnRead"),
        *("ReadVariableOp", "Identity", "ShardedFilename", "SaveV2", "Pack"),
        *("MergeV2Checkpoints", "NoOp"),
    }
)
# What the save/restore calls may be handed besides the file name (graph nodes).
_SAVE_CAPTURES = frozenset({"VarHandleOp", "Const", "LookupTableExportV2"})
_RESTORE_CAPTURES = frozenset(
    {
        *("VarHandleOp", "HashTableV2", "MutableHashTableV2", "MutableHashTableOfTensorsV2"),
        "MutableDenseHashTableV2",
    }
)
# Nodes a save file name may be built from, and the strings TensorFlow joins to the prefix.
_PREFIX_OPS = frozenset(
    {"StringJoin", "Select", "StaticRegexFullMatch", "ShardedFilename", "Const"}
)
_SUFFIX = re.compile(rb"^(\.part|_temp(_[0-9a-f]{32})?/part)$")
_S3 = b"^s3://.*"
_FIX = (
    "Export the model with tf.saved_model.save(obj, dir, signatures=...) or Keras "
    "model.export(dir), and upload the directory unchanged."
)


def saver_functions(index: GraphIndex) -> frozenset[str]:
    """The library functions the saver_def's save and restore nodes call (unchecked)."""
    saver = index.meta.saver_def
    names = set()
    for tensor in (saver.save_tensor_name, saver.restore_op_name):
        node = index.graph.by_name.get(tensor.partition(":")[0]) if tensor else None
        f = attr(node, "f") if node is not None else None
        if f is not None and f.func.name in index.functions:
            names.add(f.func.name)
    return frozenset(names)


def restore_names(index: GraphIndex, functions: frozenset[str]) -> set[str]:
    """Tensor names the RestoreV2 ops of `functions` read (to look up in variables.index)."""
    names: set[str] = set()
    for name in functions:
        place = index.place[name]
        for node in place.nodes:
            inputs = data_inputs(node)
            if node.op != "RestoreV2" or len(inputs) < 2:
                continue
            src = index.source(place, inputs[1])
            value = attr(src.node, "value") if src is not None and src.node is not None else None
            if value is not None:
                names.update(s.decode("utf-8", "replace") for s in value.tensor.string_val)
    return names


def check_saver(index: GraphIndex, variable_keys: set[str] | None) -> None:
    """Raise `Rejected(savedmodel.bad_saver)` unless the saver has TensorFlow's structure and
    restores only tensors in `variable_keys` (the variables.index keys) into the graph's own
    variables. `None`: there is no variables index, so loaders never run the restore (TF
    Serving: "The specified SavedModel has no variables; no checkpoints were restored")."""
    saver = index.meta.saver_def
    if not (saver.filename_tensor_name or saver.save_tensor_name or saver.restore_op_name):
        return  # no saver: nothing is restored (RestoreV2 elsewhere is a disallowed op)
    _Check(index, variable_keys).run()


class _Check:
    def __init__(self, index: GraphIndex, variable_keys: set[str] | None) -> None:
        self.index = index
        self.keys = variable_keys
        self.graph = index.graph

    def fail(self, what: str) -> NoReturn:
        raise Rejected(
            f"The SavedModel's saver (saver_def) is not the one TensorFlow writes: {what}. TF "
            f"Serving runs the restore function when it loads the model. {_FIX}",
            code="savedmodel.bad_saver",
        )

    def run(self) -> None:
        saver = self.index.meta.saver_def
        filename = self._node(saver.filename_tensor_name, "filename tensor", tensor=True)
        if filename.op != "Placeholder" or getattr(attr(filename, "dtype"), "type", 0) != 7:
            self.fail(f"its filename tensor {filename.name!r} is a {filename.op}, not a string "
                      "Placeholder (TF1 Saver graphs are not accepted)")  # fmt: skip
        save = self._node(saver.save_tensor_name, "save tensor", tensor=True)
        restore = self._node(saver.restore_op_name, "restore op", tensor=False)
        save_fn = self._call(save, filename, _SAVE_CAPTURES)
        restore_fn = self._call(restore, filename, _RESTORE_CAPTURES)
        if save_fn.name == restore_fn.name:
            self.fail("save and restore call the same function")
        users = {user.name for user, _ in self.index.users(self.graph, filename.name)}
        if users - {save.name, restore.name}:
            self.fail(
                f"the filename placeholder also feeds {sorted(users - {save.name, restore.name})[:3]}"
            )
        for node in (save, restore):
            if self.index.users(self.graph, node.name):
                self.fail(f"node {node.name!r} is used by other nodes")
        for fn in (save_fn, restore_fn):
            refs = self.index.references.get(fn.name, [])
            if len(refs) != 1:
                self.fail(f"function {fn.name!r} is used outside the saver ({len(refs)} uses)")
        self._check_outputs_not_signed(save, restore, filename)
        self._restore_function(restore_fn)
        self._save_function(save_fn)

    def _node(self, text: str, what: str, *, tensor: bool) -> Any:
        name, _, output = text.partition(":")
        node = self.graph.by_name.get(name)
        if node is None or (tensor and output not in ("", "0")) or (not tensor and output):
            self.fail(f"its {what} {text!r} is not a node of the graph")
        return node

    def _call(self, node: Any, filename: Any, captures: frozenset[str]) -> Place:
        f = attr(node, "f")
        name = f.func.name if f is not None else ""
        if node.op not in CALL_OPS or name not in self.index.functions:
            self.fail(f"{node.name!r} is a {node.op}, not a call of a library function")
        inputs = data_inputs(node)
        if len(inputs) != len(node.input):
            self.fail(f"{node.name!r} has control inputs")
        first = self.index.source(self.graph, inputs[0]) if inputs else None
        if (
            first is None
            or first.node is None
            or first.node.name != filename.name
            or first.output != "0"
        ):
            self.fail(f"{node.name!r} is not handed the filename placeholder first")
        for text in inputs[1:]:
            src = self.index.source(self.graph, text)
            if src is None or src.node.op not in captures:
                op = src.node.op if src else "nothing"
                self.fail(f"{node.name!r} is handed {text!r} ({op}), not a variable or table")
        place = self.index.place[name]
        if len(place.args) != len(inputs):
            self.fail(f"function {name!r} takes {len(place.args)} arguments, given {len(inputs)}")
        return place

    def _check_outputs_not_signed(self, *nodes: Any) -> None:
        names = {n.name for n in nodes}
        for entry in self.index.meta.signature_def:
            for tensors in (entry.value.inputs, entry.value.outputs):
                for t in tensors:
                    if t.value.name.partition(":")[0] in names:
                        self.fail(f"signature {entry.key!r} uses the saver's node {t.value.name!r}")

    def _restore_function(self, fn: Place) -> None:
        self._ops(fn, _RESTORE_OPS, "restore")
        prefix = fn.args[0]
        for node in fn.nodes:
            inputs = data_inputs(node)
            if node.op == "RestoreV2":
                src = self.index.source(fn, inputs[0])
                if src is None or src.arg != prefix:
                    self.fail(f"RestoreV2 {node.name!r} reads from {inputs[0]!r}, not the "
                              "SavedModel's own variables prefix")  # fmt: skip
                names = self._strings(fn, inputs[1], node)
                self._strings(fn, inputs[2], node)
                unknown = sorted(n for n in names if self.keys is not None and n not in self.keys)
                if unknown:
                    self.fail(f"RestoreV2 {node.name!r} restores {unknown[:3]}, which "
                              "variables/variables.index does not hold")  # fmt: skip
            elif node.op in ("AssignVariableOp", "LookupTableImportV2"):
                target = self.index.source(fn, inputs[0])
                if target is None or target.arg is None or target.arg == prefix:
                    self.fail(f"{node.op} {node.name!r} writes to {inputs[0]!r}, not to a "
                              "variable or table handed to the restore function")  # fmt: skip
                for text in inputs[1:]:
                    value = self.index.trace(fn, text)
                    if value is None or value.node is None or value.node.op != "RestoreV2":
                        self.fail(
                            f"{node.op} {node.name!r} assigns {text!r}, not a restored tensor"
                        )
        for user, position in self.index.users(fn, prefix):
            if not (user.op == "RestoreV2" and position == 0) and user.op != "Identity":
                self.fail(f"the restore function hands its file prefix to {user.op} {user.name!r}")

    def _save_function(self, fn: Place) -> None:
        self._ops(fn, _SAVE_OPS, "save")
        prefix = fn.args[0]
        for node in fn.nodes:
            inputs = data_inputs(node)
            if node.op == "SaveV2":
                self._prefix_derived(fn, inputs[0], prefix, node)
                self._strings(fn, inputs[1], node)
                self._strings(fn, inputs[2], node)
            elif node.op == "MergeV2Checkpoints":
                pack = self.index.trace(fn, inputs[0])
                if pack is None or pack.node is None or pack.node.op != "Pack":
                    self.fail(f"MergeV2Checkpoints {node.name!r} merges {inputs[0]!r}")
                for text in data_inputs(pack.node):
                    self._prefix_derived(fn, text, prefix, node)
                dest = self.index.trace(fn, inputs[1])
                if dest is None or dest.arg != prefix:
                    self.fail(f"MergeV2Checkpoints {node.name!r} writes to {inputs[1]!r}")
            elif node.op in ("ReadVariableOp", "DisableCopyOnRead"):
                src = self.index.source(fn, inputs[0])
                if src is None or src.arg is None or src.arg == prefix:
                    self.fail(f"{node.op} {node.name!r} reads {inputs[0]!r}")
            elif node.op == "StaticRegexFullMatch":
                pattern = attr(node, "pattern")
                if pattern is None or pattern.s != _S3:
                    self.fail(f"StaticRegexFullMatch {node.name!r} has another pattern")

    def _prefix_derived(self, fn: Place, text: str, prefix: str, user: Any) -> None:
        """`text` is the file prefix argument with TensorFlow's own suffixes joined to it."""
        stack, seen = [text], 0
        while stack:
            seen += 1
            if seen > 256:
                self.fail(f"{user.op} {user.name!r}: its file name is built by too many nodes")
            src = self.index.trace(fn, stack.pop())
            if src is None:
                self.fail(f"{user.op} {user.name!r} writes to a file name of unknown origin")
            if src.arg is not None:
                if src.arg != prefix:
                    self.fail(f"{user.op} {user.name!r} writes to a file named by {src.arg!r}")
                continue
            node = src.node
            if node.op not in _PREFIX_OPS:
                self.fail(f"{user.op} {user.name!r}: its file name comes from {node.op}")
            if node.op == "Const":
                value = attr(node, "value")
                strings = list(value.tensor.string_val) if value is not None else []
                if any(not _SUFFIX.match(s) for s in strings):
                    self.fail(f"{user.op} {user.name!r} writes to a file name joined with "
                              f"{strings[:2]!r}")  # fmt: skip
                continue
            stack.extend(data_inputs(node))

    def _strings(self, fn: Place, text: str, user: Any) -> list[str]:
        src = self.index.source(fn, text)
        value = attr(src.node, "value") if src is not None and src.node is not None else None
        if src is None or src.node is None or src.node.op != "Const" or value is None:
            self.fail(f"{user.op} {user.name!r} takes {text!r}, not a constant")
        try:
            return [s.decode("utf-8") for s in value.tensor.string_val]
        except UnicodeDecodeError:
            self.fail(f"{user.op} {user.name!r} names a tensor that is not UTF-8")

    def _ops(self, fn: Place, allowed: frozenset[str], which: str) -> None:
        other = sorted({n.op for n in fn.nodes} - allowed)
        if other:
            self.fail(f"the {which} function {fn.name!r} also runs {other[:5]}")
