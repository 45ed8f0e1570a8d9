"""Just enough of TensorFlow's SavedModel protobuf schema to inspect `saved_model.pb` without TF.

Importing `tensorflow.core.protobuf.saved_model_pb2` imports all of TensorFlow, so the messages we
read are declared here with the same field numbers (from tensorflow/core/protobuf/*.proto);
fields we do not declare are skipped by the parser as unknown fields.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "registrar_tf_subset"

# name -> [(field, number, type, label, message type)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "SavedModel": [("meta_graphs", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "MetaGraphDef")],
    # Only what the resolve stage needs from saved_model.pb (the asset files to wait for): the
    # rest of the graph stays unknown bytes (stored as they are, 1x): no walk, no amplification.
    "SavedModelAssets": [("meta_graphs", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "MetaGraphAssets")],
    "MetaGraphAssets": [("asset_file_def", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AssetFileDef")],
    "MetaGraphDef": [
        ("graph_def", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "GraphDef"),
        ("saver_def", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SaverDef"),
        ("signature_def", 5, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "SignatureDefEntry"),
        ("asset_file_def", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AssetFileDef"),
        ("object_graph_def", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedObjectGraph"),
    ],
    "AssetFileDef": [
        ("tensor_info", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "TensorInfo"),
        ("filename", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "SignatureDefEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SignatureDef"),
    ],
    "SaverDef": [
        ("filename_tensor_name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("save_tensor_name", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("restore_op_name", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "GraphDef": [
        ("node", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "NodeDef"),
        ("library", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "FunctionDefLibrary"),
        ("versions", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "VersionDef"),
    ],
    "VersionDef": [
        ("producer", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("min_consumer", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("bad_consumers", 3, _F.TYPE_INT32, _F.LABEL_REPEATED, None),
    ],
    "NodeDef": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("op", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("input", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, None),
        ("attr", 5, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AttrEntry"),
    ],
    "AttrEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "AttrValue"),
    ],
    "AttrValue": [
        ("list", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ListValue"),
        ("s", 2, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None),
        ("i", 3, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
        ("type", 6, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),  # DataType enum
        ("tensor", 8, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "TensorProto"),
        ("func", 10, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "NameAttrList"),
    ],
    "ListValue": [
        ("s", 2, _F.TYPE_BYTES, _F.LABEL_REPEATED, None),
        ("type", 6, _F.TYPE_INT32, _F.LABEL_REPEATED, None),
        ("func", 9, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "NameAttrList"),
    ],
    "NameAttrList": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("attr", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AttrEntry"),
    ],
    # tensor.proto: what graph constants (saver tensor names, file names) hold
    "TensorProto": [
        ("dtype", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("string_val", 8, _F.TYPE_BYTES, _F.LABEL_REPEATED, None),
    ],
    "FunctionDefLibrary": [
        ("function", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "FunctionDef"),
        ("gradient", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "GradientDef"),
    ],
    "GradientDef": [
        ("function_name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("gradient_func", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "FunctionDef": [
        ("signature", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "OpDef"),
        ("node_def", 3, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "NodeDef"),
    ],
    "OpDef": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("input_arg", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ArgDef"),
    ],
    "ArgDef": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "SignatureDef": [
        ("inputs", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "TensorInfoEntry"),
        ("outputs", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "TensorInfoEntry"),
        ("method_name", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "TensorInfoEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "TensorInfo"),
    ],
    "TensorInfo": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("dtype", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("tensor_shape", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "TensorShapeProto"),
        ("coo_sparse", 4, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None),
        ("composite_tensor", 5, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None),
    ],
    "TensorShapeProto": [
        ("dim", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "Dim"),
        ("unknown_rank", 3, _F.TYPE_BOOL, _F.LABEL_OPTIONAL, None),
    ],
    "Dim": [("size", 1, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None)],
    # saved_object_graph.proto + trackable_object_graph.proto: what tf.saved_model.load wires
    # (scan.object_graph); SavedObject's kinds are one oneof, as in TensorFlow's schema.
    "SavedObjectGraph": [
        ("nodes", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "SavedObject"),
        ("concrete_functions", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ConcreteFunctionEntry"),
    ],
    "ConcreteFunctionEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedConcreteFunction"),
    ],
    "SavedConcreteFunction": [("bound_inputs", 2, _F.TYPE_INT32, _F.LABEL_REPEATED, None)],
    "SavedObject": [
        ("children", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ObjectReference"),
        ("dependencies", 15, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ObjectReference"),
        ("slot_variables", 3, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "SlotVariableReference"),
        ("user_object", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedUserObject"),
        ("asset", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedAsset"),
        ("function", 6, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedFunction"),
        ("variable", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedVariable"),
        (
            "bare_concrete_function",
            8,
            _F.TYPE_MESSAGE,
            _F.LABEL_OPTIONAL,
            "SavedBareConcreteFunction",
        ),
        ("constant", 9, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedConstant"),
        ("resource", 10, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedResource"),
        ("captured_tensor", 12, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "CapturedTensor"),
        ("saveable_objects", 11, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "SaveableObjectsEntry"),
        ("registered_name", 13, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("registered_saver", 16, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "ObjectReference": [
        ("node_id", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("local_name", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "SlotVariableReference": [
        ("original_variable_node_id", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("slot_name", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("slot_variable_node_id", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
    ],
    "SavedUserObject": [("identifier", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "SavedAsset": [("asset_file_def_index", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None)],
    "SavedFunction": [("concrete_functions", 1, _F.TYPE_STRING, _F.LABEL_REPEATED, None)],
    "SavedBareConcreteFunction": [
        ("concrete_function_name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)
    ],
    "SavedConstant": [("operation", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "SavedVariable": [
        ("dtype", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),  # DataType enum
        ("name", 6, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        (
            "experimental_distributed_variable_components",
            8,
            _F.TYPE_MESSAGE,
            _F.LABEL_REPEATED,
            "SavedVariable",
        ),
    ],
    "SavedResource": [("device", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "CapturedTensor": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("concrete_function", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "SaveableObjectsEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SaveableObject"),
    ],
    "SaveableObject": [
        ("save_function", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("restore_function", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
    ],
    # tensorflow_serving/apis/prediction_log.proto and the requests it holds
    # (assets.extra/tf_serving_warmup_requests); responses are skipped as unknown fields.
    "PredictionLog": [
        ("classify_log", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "RequestLog"),
        ("regress_log", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "RequestLog"),
        ("multi_inference_log", 4, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "MultiInferenceLog"),
        ("session_run_log", 5, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SessionRunLog"),
        ("predict_log", 6, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "PredictLog"),
    ],
    # ClassifyLog / RegressLog: request (Classification/RegressionRequest) = 1, model_spec = 1
    "RequestLog": [("request", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ModelSpecRequest")],
    "ModelSpecRequest": [("model_spec", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ModelSpec")],
    "ModelSpec": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("signature_name", 3, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
    ],
    "MultiInferenceLog": [
        ("request", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "MultiInferenceRequest")
    ],
    "MultiInferenceRequest": [("tasks", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ModelSpecRequest")],
    "SessionRunLog": [],
    "PredictLog": [("request", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "PredictRequest")],
    "PredictRequest": [
        ("model_spec", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ModelSpec"),
        ("inputs", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "TensorProtoEntry"),
        ("output_filter", 3, _F.TYPE_STRING, _F.LABEL_REPEATED, None),
    ],
    "TensorProtoEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "TensorProto"),
    ],
    # tensor_bundle.proto (variables.index values)
    "BundleHeaderProto": [("num_shards", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None)],
    "BundleEntryProto": [
        ("dtype", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("shard_id", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("offset", 4, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
        ("size", 5, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
    ],
}

# message -> (oneof, its fields): TensorFlow's parser keeps only the last kind on the wire;
# declaring the oneof makes ours do the same (WhichOneof), so both read one kind.
ONEOFS = {
    "SavedObject": ("kind", ("user_object", "asset", "function", "variable",
                             "bare_concrete_function", "constant", "resource",
                             "captured_tensor")),
}  # fmt: skip

# tensorflow/core/framework/types.proto DataType -> numpy-style names
DTYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
    8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8", 13: "qint32",
    14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16", 18: "complex128", 19: "float16",
    20: "resource", 21: "variant", 22: "uint32", 23: "uint64",
}  # fmt: skip


@cache
def message(name: str) -> Any:
    """The generated message class for a declared message, e.g. ``message("SavedModel")``."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{_PACKAGE}.{name}"))


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    """One pool holding every declared message, built once per process."""
    file = descriptor_pb2.FileDescriptorProto(name="registrar_tf_subset.proto", package=_PACKAGE)
    file.syntax = "proto3"
    for msg_name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=msg_name)
        oneof, members = ONEOFS.get(msg_name, ("", ()))
        if oneof:
            msg.oneof_decl.add(name=oneof)
        for field, number, ftype, label, type_name in fields:
            f = msg.field.add(name=field, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
            if field in members:
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool


class ProtoLimit(ValueError):
    """Parsing the bytes would take more memory than allowed, or they are not wire format."""


# What upb (the protobuf runtime) allocates per parsed element, measured with protobuf 6 on
# x86-64 and rounded up: a message is a struct of ~8 bytes per declared field plus a header,
# and a slot in its parent's repeated array (arrays grow by doubling); a repeated string is a
# 16-byte view plus its slot; a repeated scalar <= 8 bytes plus growth. String contents are
# copied once: at most the input's size, counted separately.
_MESSAGE_COST = 32
_FIELD_COST = 16
_STRING_COST = 40
_SCALAR_COST = 16
_MSG, _REPEATED_STRING, _REPEATED_SCALAR = 0, 1, 2
_STRINGS = (_F.TYPE_STRING, _F.TYPE_BYTES)


def parse_limited(name: str, data: bytes, max_bytes: int) -> Any:
    """Parse `data` as the declared message `name`, refusing (`ProtoLimit`) before parsing when
    the parse would allocate more than `max_bytes` for its messages and repeated fields
    (`estimate_parse_bytes`). Memory: at most `max_bytes` plus `len(data)` (strings)."""
    estimate_parse_bytes(data, name, max_bytes)
    parsed = message(name)()
    parsed.ParseFromString(data)
    return parsed


@cache
def _layout() -> dict[str, tuple[int, dict[int, tuple[int, str | None, int]]]]:
    """message -> (its cost, {field number: (kind, message type, cost)}) for the fields that
    allocate per occurrence: message-typed fields and repeated fields."""
    cost = {name: _MESSAGE_COST + _FIELD_COST * len(fields) for name, fields in _MESSAGES.items()}
    layout = {}
    for name, fields in _MESSAGES.items():
        allocating: dict[int, tuple[int, str | None, int]] = {}
        for _, number, ftype, label, type_name in fields:
            if ftype == _F.TYPE_MESSAGE and type_name:
                allocating[number] = (_MSG, type_name, cost[type_name])
            elif label == _F.LABEL_REPEATED and ftype in _STRINGS:
                allocating[number] = (_REPEATED_STRING, None, _STRING_COST)
            elif label == _F.LABEL_REPEATED:
                allocating[number] = (_REPEATED_SCALAR, None, _SCALAR_COST)
        layout[name] = (cost[name], allocating)
    return layout


def _worst_cost_per_byte() -> float:
    """The most any input byte can cost: a message field takes at least 2 bytes (tag, length),
    a repeated string 2, a repeated scalar 1 (packed)."""
    layout = _layout()
    worst = _SCALAR_COST
    for _, fields in layout.values():
        for kind, _, cost in fields.values():
            worst = max(worst, cost / (1 if kind == _REPEATED_SCALAR else 2))
    return worst


def estimate_parse_bytes(data: bytes, root: str, limit: int) -> int:
    """An upper bound on what parsing `data` as `root` allocates (beyond copying its strings),
    computed without parsing; `ProtoLimit` as soon as it passes `limit`.

    A parsed message costs tens of bytes however small its encoding (an empty repeated
    `NodeDef` is 2 bytes, ~20-30x), so the number and kind of elements, not the size, bound the
    parser's memory. When even the worst case (`_worst_cost_per_byte`) fits, nothing is walked;
    otherwise this walks the wire format (~0.05 s a MB: unknown fields, strings and scalars are
    skipped by their length, so big constants cost nothing) and also refuses bytes that are not
    well-formed proto3 wire format (groups included: TensorFlow writes none).
    """
    worst = int(len(data) * _worst_cost_per_byte())
    if worst <= limit:
        return worst
    layout = _layout()
    root_cost, root_fields = layout[root]
    total = root_cost
    stack = [(root_fields, 0, len(data))]
    try:
        while stack:
            fields, pos, end = stack.pop()
            while pos < end:
                tag = data[pos]
                pos += 1
                if tag >= 0x80:
                    tag, pos = _varint_tail(data, pos, tag)
                wire = tag & 7
                spec = fields.get(tag >> 3)
                if wire == 2:
                    length = data[pos]
                    pos += 1
                    if length >= 0x80:
                        length, pos = _varint_tail(data, pos, length)
                    if spec is not None:
                        kind, child, cost = spec
                        if kind == _REPEATED_SCALAR:  # packed: at most one element a byte
                            total += cost * length
                        else:
                            total += cost
                            if kind == _MSG and length:
                                inner = layout[child][1]  # type: ignore[index]
                                if inner:  # nothing inside allocates: no need to walk it
                                    stack.append((inner, pos, pos + length))
                    pos += length
                else:
                    if wire == 0:
                        while data[pos] >= 0x80:
                            pos += 1
                        pos += 1
                    elif wire == 1:
                        pos += 8
                    elif wire == 5:
                        pos += 4
                    else:
                        raise ProtoLimit(f"unsupported wire type {wire}")
                    if spec is not None and spec[0] == _REPEATED_SCALAR:
                        total += spec[2]
                if tag < 8:
                    raise ProtoLimit("field number 0")
                if total > limit:
                    raise ProtoLimit(
                        f"parsing it would take more than {limit // 1024**2:,} MiB of memory"
                    )
            if pos != end:
                raise ProtoLimit("a field runs past the end of its message")
    except IndexError:
        raise ProtoLimit("truncated protobuf") from None
    return total


def _varint_tail(data: bytes, pos: int, first: int) -> tuple[int, int]:
    result, shift = first & 0x7F, 7
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoLimit("varint longer than 10 bytes")
