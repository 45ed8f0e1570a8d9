"""The protobuf subset the scan parses (`scan.proto`) matches TensorFlow's own schema: every
declared field has TensorFlow's name, number and a wire-compatible type, and the oneof the loader
reads the object kind from has the same members. Fails when TensorFlow changes a field we read."""

from __future__ import annotations

import pytest

from handlers.validation.scan import proto

pytest.importorskip("tensorflow")

# subset message -> TensorFlow's full name (the serving protos are not part of TensorFlow).
TF_NAMES = {
    "SavedModel": "tensorflow.SavedModel",
    "SavedModelAssets": "tensorflow.SavedModel",
    "MetaGraphAssets": "tensorflow.MetaGraphDef",
    "MetaGraphDef": "tensorflow.MetaGraphDef",
    "AssetFileDef": "tensorflow.AssetFileDef",
    "SignatureDefEntry": "tensorflow.MetaGraphDef.SignatureDefEntry",
    "SaverDef": "tensorflow.SaverDef",
    "GraphDef": "tensorflow.GraphDef",
    "VersionDef": "tensorflow.VersionDef",
    "NodeDef": "tensorflow.NodeDef",
    "AttrEntry": "tensorflow.NodeDef.AttrEntry",
    "AttrValue": "tensorflow.AttrValue",
    "ListValue": "tensorflow.AttrValue.ListValue",
    "NameAttrList": "tensorflow.NameAttrList",
    "TensorProto": "tensorflow.TensorProto",
    "FunctionDefLibrary": "tensorflow.FunctionDefLibrary",
    "GradientDef": "tensorflow.GradientDef",
    "FunctionDef": "tensorflow.FunctionDef",
    "OpDef": "tensorflow.OpDef",
    "ArgDef": "tensorflow.OpDef.ArgDef",
    "SignatureDef": "tensorflow.SignatureDef",
    "TensorInfoEntry": "tensorflow.SignatureDef.InputsEntry",
    "TensorInfo": "tensorflow.TensorInfo",
    "TensorShapeProto": "tensorflow.TensorShapeProto",
    "Dim": "tensorflow.TensorShapeProto.Dim",
    "SavedObjectGraph": "tensorflow.SavedObjectGraph",
    "ConcreteFunctionEntry": "tensorflow.SavedObjectGraph.ConcreteFunctionsEntry",
    "SavedConcreteFunction": "tensorflow.SavedConcreteFunction",
    "SavedObject": "tensorflow.SavedObject",
    "ObjectReference": "tensorflow.TrackableObjectGraph.TrackableObject.ObjectReference",
    "SlotVariableReference": (
        "tensorflow.TrackableObjectGraph.TrackableObject.SlotVariableReference"
    ),
    "SavedUserObject": "tensorflow.SavedUserObject",
    "SavedAsset": "tensorflow.SavedAsset",
    "SavedFunction": "tensorflow.SavedFunction",
    "SavedBareConcreteFunction": "tensorflow.SavedBareConcreteFunction",
    "SavedConstant": "tensorflow.SavedConstant",
    "SavedVariable": "tensorflow.SavedVariable",
    "SavedResource": "tensorflow.SavedResource",
    "CapturedTensor": "tensorflow.CapturedTensor",
    "SaveableObjectsEntry": "tensorflow.SavedObject.SaveableObjectsEntry",
    "SaveableObject": "tensorflow.SaveableObject",
    "BundleHeaderProto": "tensorflow.BundleHeaderProto",
    "BundleEntryProto": "tensorflow.BundleEntryProto",
}
SERVING_ONLY = {
    "PredictionLog", "RequestLog", "ModelSpecRequest", "ModelSpec", "MultiInferenceLog",
    "MultiInferenceRequest", "SessionRunLog", "PredictLog", "PredictRequest", "TensorProtoEntry",
}  # fmt: skip


def _tf_pool():
    # Importing these registers TensorFlow's descriptors in the default pool.
    from google.protobuf import descriptor_pool
    from tensorflow.core.protobuf import (  # noqa: F401
        saved_model_pb2,
        saved_object_graph_pb2,
        tensor_bundle_pb2,
    )

    return descriptor_pool.Default()


def _compatible(ours, theirs) -> bool:
    """Same wire encoding and meaning: the subset reads enums as int32, and keeps some
    messages as opaque bytes."""
    if ours.type == theirs.type:
        return True
    pair = {ours.type, theirs.type}
    return pair in ({ours.TYPE_INT32, ours.TYPE_ENUM}, {ours.TYPE_BYTES, ours.TYPE_MESSAGE})


def test_every_declared_message_is_mapped() -> None:
    assert set(proto._MESSAGES) == set(TF_NAMES) | SERVING_ONLY


@pytest.mark.parametrize("name", sorted(TF_NAMES))
def test_the_subset_matches_tensorflow(name: str) -> None:
    theirs = _tf_pool().FindMessageTypeByName(TF_NAMES[name])
    ours = proto.message(name).DESCRIPTOR
    for field in ours.fields:
        tf_field = theirs.fields_by_number.get(field.number)
        assert tf_field is not None, f"{name}.{field.name} ({field.number}) is not in TensorFlow"
        assert tf_field.name == field.name, (name, field.number, tf_field.name)
        assert _compatible(field, tf_field), (name, field.name, field.type, tf_field.type)
        assert field.is_repeated == tf_field.is_repeated, (name, field.name)
        shared_entry = tf_field.message_type is not None and (
            tf_field.message_type.GetOptions().map_entry  # one subset entry serves every map
        )
        if (
            field.message_type is not None
            and tf_field.message_type is not None
            and not (shared_entry)
        ):
            assert TF_NAMES.get(field.message_type.name) == tf_field.message_type.full_name, (
                name,
                field.name,
            )
    for oneof in ours.oneofs:
        tf_oneof = theirs.oneofs_by_name[oneof.name]
        assert {f.name for f in oneof.fields} == {f.name for f in tf_oneof.fields}, name


def test_the_object_kinds_are_every_kind_tensorflow_has() -> None:
    """A new SavedObject kind in TensorFlow needs a decision in scan.object_graph."""
    theirs = _tf_pool().FindMessageTypeByName("tensorflow.SavedObject").oneofs_by_name["kind"]
    assert set(proto.ONEOFS["SavedObject"][1]) == {f.name for f in theirs.fields}
