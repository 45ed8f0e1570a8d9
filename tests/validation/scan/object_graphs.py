"""Hostile SavedModels whose *object graph* (what `tf.saved_model.load` wires) is edited while the
graph the other checks read stays TensorFlow's own: a real export with a vocabulary table
(`tests.modelfactory.build_saved_model_with_asset`), rewritten with TensorFlow's protos the way an
attacker would. Each edit re-points the table initializer's captured file name (or another
binding) at something other than the model's own asset file. TF imported per call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.validation.scan.savedmodels import edit

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CANARY_CONST = "registrar_canary_path"


def build(directory: Path) -> Path:
    from tests.modelfactory import build_saved_model_with_asset

    return build_saved_model_with_asset(Path(directory))


def initializer(meta: Any) -> tuple[Any, int]:
    """The object graph's entry of the table initializer's concrete function and the position,
    in its bound inputs, of the file name InitializeTableFromTextFileV2 reads."""
    functions = {f.signature.name: f for f in meta.graph_def.library.function}
    for name, entry in meta.object_graph_def.concrete_functions.items():
        fn = functions[name]
        for node in fn.node_def:
            if node.op == "InitializeTableFromTextFileV2":
                args = [a.name for a in fn.signature.input_arg]
                position = args.index(node.input[1])
                return entry, position - (len(args) - len(entry.bound_inputs))
    raise AssertionError("no table initializer")


def _kind_index(meta: Any, kind: str) -> int:
    return next(
        i for i, n in enumerate(meta.object_graph_def.nodes) if n.WhichOneof("kind") == kind
    )


def _rebind(meta: Any, node_id: int) -> None:
    entry, slot = initializer(meta)
    entry.bound_inputs[slot] = node_id


def bind_constant(directory: Path, path: str) -> Path:
    """The file name becomes a constant holding `path`: a graph Const (allowed anywhere) and a
    SavedConstant naming it, bound where the asset was."""
    import tensorflow as tf

    with edit(directory) as meta:
        node = meta.graph_def.node.add(name=CANARY_CONST, op="Const")
        node.attr["dtype"].type = tf.string.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(path.encode(), dtype=tf.string))
        obj = meta.object_graph_def.nodes.add()
        obj.registered_name = "tf.TrackableConstant"
        obj.constant.operation = CANARY_CONST
        _rebind(meta, len(meta.object_graph_def.nodes) - 1)
    return Path(directory)


def bind_variable(directory: Path) -> Path:
    """The file name becomes a string variable (its value would come from variables/)."""
    import tensorflow as tf

    with edit(directory) as meta:
        obj = meta.object_graph_def.nodes.add()
        obj.variable.dtype = tf.string.as_datatype_enum
        obj.variable.name = "path"
        _rebind(meta, len(meta.object_graph_def.nodes) - 1)
    return Path(directory)


def bind_captured_tensor(directory: Path) -> Path:
    """The file name becomes a tensor of another function's graph (its Const output)."""
    with edit(directory) as meta:
        entry, _ = initializer(meta)
        name = next(k for k, v in meta.object_graph_def.concrete_functions.items() if v is entry)
        obj = meta.object_graph_def.nodes.add()
        obj.captured_tensor.name = "Const:0"
        obj.captured_tensor.concrete_function = name
        _rebind(meta, len(meta.object_graph_def.nodes) - 1)
    return Path(directory)


def bind_resource(directory: Path) -> Path:
    """The file name becomes the table resource itself."""
    with edit(directory) as meta:
        _rebind(meta, _kind_index(meta, "resource"))
    return Path(directory)


def bind_user_object(directory: Path) -> Path:
    """The file name becomes a plain user object (the root)."""
    with edit(directory) as meta:
        _rebind(meta, 0)
    return Path(directory)


def unbind(directory: Path) -> Path:
    """The asset is dropped from the bound inputs: the file name becomes a call argument."""
    with edit(directory) as meta:
        entry, slot = initializer(meta)
        kept = [b for i, b in enumerate(entry.bound_inputs) if i != slot]
        del entry.bound_inputs[:]
        entry.bound_inputs.extend(kept)
    return Path(directory)


def asset_index(directory: Path, index: int) -> Path:
    """The asset object points to asset entry `index` (out of range)."""
    with edit(directory) as meta:
        meta.object_graph_def.nodes[_kind_index(meta, "asset")].asset.asset_file_def_index = index
    return Path(directory)


def second_asset(directory: Path, filename: str = "other.txt") -> Path:
    """A second, real asset file; the object graph binds it where the graph passes the first."""
    (Path(directory) / "assets" / filename).write_text("other\n")
    with edit(directory) as meta:
        entry = meta.asset_file_def.add(filename=filename)
        entry.tensor_info.name = "asset_path_initializer_9:0"
        meta.graph_def.node.add(name="asset_path_initializer_9", op="Placeholder")
        obj = meta.object_graph_def.nodes.add()
        obj.asset.asset_file_def_index = len(meta.asset_file_def) - 1
        _rebind(meta, len(meta.object_graph_def.nodes) - 1)
    return Path(directory)


def asset_named(directory: Path, filename: str) -> Path:
    """The asset object's entry names `filename` (e.g. '' or '../../x')."""
    with edit(directory) as meta:
        meta.asset_file_def[0].filename = filename
    return Path(directory)
