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
    "MetaGraphDef": [
        ("graph_def", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "GraphDef"),
        ("saver_def", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SaverDef"),
        ("signature_def", 5, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "SignatureDefEntry"),
        ("asset_file_def", 6, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AssetFileDef"),
        ("object_graph_def", 7, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "SavedObjectGraph"),
    ],
    "AssetFileDef": [("filename", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
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
    ],
    "NodeDef": [
        ("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("op", 2, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("attr", 5, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "AttrEntry"),
    ],
    "AttrEntry": [
        ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
        ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "AttrValue"),
    ],
    "AttrValue": [
        ("list", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "ListValue"),
        ("s", 2, _F.TYPE_BYTES, _F.LABEL_OPTIONAL, None),
        ("func", 10, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "NameAttrList"),
    ],
    "ListValue": [("func", 9, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "NameAttrList")],
    "NameAttrList": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    "FunctionDefLibrary": [("function", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "FunctionDef")],
    "FunctionDef": [
        ("signature", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, "OpDef"),
        ("node_def", 3, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "NodeDef"),
    ],
    "OpDef": [("name", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
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
    "SavedObjectGraph": [
        ("concrete_functions", 2, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, "ConcreteFunctionEntry")
    ],
    "ConcreteFunctionEntry": [("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None)],
    # tensor_bundle.proto (variables.index values)
    "BundleHeaderProto": [("num_shards", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None)],
    "BundleEntryProto": [
        ("dtype", 1, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("shard_id", 3, _F.TYPE_INT32, _F.LABEL_OPTIONAL, None),
        ("offset", 4, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
        ("size", 5, _F.TYPE_INT64, _F.LABEL_OPTIONAL, None),
    ],
}

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
    file = descriptor_pb2.FileDescriptorProto(name="registrar_tf_subset.proto", package=_PACKAGE)
    file.syntax = "proto3"
    for msg_name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=msg_name)
        for field, number, ftype, label, type_name in fields:
            f = msg.field.add(name=field, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
