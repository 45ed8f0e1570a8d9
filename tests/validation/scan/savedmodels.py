"""Hostile SavedModels for the graph checks, made by TensorFlow itself (`tf.saved_model.save` of a
`tf.function` that uses the op), or a real save edited the way an attacker would edit it (nodes
added to the saver functions, a library function called by op name). TF imported per call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def save_serving(directory: Path, body: Callable[[Any], Any], *, module: Any = None) -> Path:
    """A SavedModel whose serving_default (x: float32[None, 4]) returns `body(x)` as {'y': ...}."""
    import tensorflow as tf

    module = module or tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def serve(x: Any) -> dict[str, Any]:
        return {"y": body(x)}

    module.serve = serve
    tf.saved_model.save(module, str(directory), signatures={"serving_default": serve})
    return Path(directory)


def with_variable(directory: Path) -> Path:
    """A plain, valid model with one variable (so the saver restores something)."""
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(tf.ones([4, 2]), name="w")
    return save_serving(directory, lambda x: tf.matmul(x, module.w), module=module)


@contextlib.contextmanager
def edit(directory: Path) -> Iterator[Any]:
    """Yield the MetaGraphDef of `directory/saved_model.pb` (TF's own proto classes) and write
    it back; fingerprint.pb goes (it would no longer match, as after any hand edit)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = Path(directory) / "saved_model.pb"
    model = saved_model_pb2.SavedModel()
    model.ParseFromString(pb.read_bytes())
    yield model.meta_graphs[0]
    pb.write_bytes(model.SerializeToString())
    (Path(directory) / "fingerprint.pb").unlink(missing_ok=True)


def function(meta: Any, name_part: str) -> Any:
    """The library function whose name contains `name_part` (exactly one)."""
    found = [f for f in meta.graph_def.library.function if name_part in f.signature.name]
    assert len(found) == 1, [f.signature.name for f in meta.graph_def.library.function]
    return found[0]


def saver_function(meta: Any, which: str) -> Any:
    """The save ("save") or restore ("restore") function the saver_def's node calls."""
    name = meta.saver_def.save_tensor_name if which == "save" else meta.saver_def.restore_op_name
    node = next(n for n in meta.graph_def.node if n.name == name.split(":")[0])
    return function(meta, node.attr["f"].func.name)


def add_library(meta: Any, fn: Any) -> str:
    """Copy a tf.function's FunctionDef (and those it calls) into the library; its name."""
    concrete = fn.get_concrete_function()
    library = concrete.graph.as_graph_def().library
    existing = {f.signature.name for f in meta.graph_def.library.function}
    for fdef in [*library.function, concrete.function_def]:
        if fdef.signature.name not in existing:
            meta.graph_def.library.function.add().CopyFrom(fdef)
            existing.add(fdef.signature.name)
    return concrete.function_def.signature.name


def call_by_op_name(fdef: Any, callee: str, inputs: list[str]) -> None:
    """Add a node `op: <callee>` to `fdef` and make its output-producing Identity wait for it."""
    node = fdef.node_def.add(name="evil_call", op=callee)
    node.input.extend(inputs)
    last = next(n for n in fdef.node_def if n.op == "Identity" and n.name == fdef.ret[
        fdef.signature.output_arg[0].name].split(":")[0])  # fmt: skip
    last.input.append("^evil_call")


def const(fdef: Any, name: str, values: list[bytes]) -> str:
    """A string Const node in `fdef`; its output name."""
    import tensorflow as tf

    node = fdef.node_def.add(name=name, op="Const")
    node.attr["dtype"].type = tf.string.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(values, dtype=tf.string))
    return f"{name}:output:0"


def warmup_record(log: Any) -> bytes:
    return log.SerializeToString()


def write_warmup(
    directory: Path, records: list[bytes], name: str = "tf_serving_warmup_requests"
) -> Path:
    """assets.extra/<name> as TensorFlow's own TFRecord writer frames it."""
    import tensorflow as tf

    extra = Path(directory) / "assets.extra"
    extra.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(extra / name)) as writer:
        for record in records:
            writer.write(record)
    return extra / name


def predict_log(
    inputs: dict[str, Any], *, signature: str = "", outputs: tuple[str, ...] = ()
) -> bytes:
    """A PredictionLog{predict_log{request}} (field numbers of tensorflow_serving/apis), the
    tensors as TensorFlow serializes them."""
    import tensorflow as tf

    from handlers.validation.scan.proto import message

    log = message("PredictionLog")()
    request = log.predict_log.request
    request.model_spec.name = "m"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs.add(key=key).value.ParseFromString(
            tf.make_tensor_proto(value).SerializeToString()
        )
    request.output_filter.extend(outputs)
    return log.SerializeToString()
