"""Hostile SavedModels made by TensorFlow, rejected by the graph checks with their specific reason
(through the Validator: the static scan rejects them before the sandbox loads anything)."""

from __future__ import annotations

from pathlib import Path

import pytest

from handlers.errors import Rejected
from handlers.validation.validator import Validator
from tests.validation.scan import savedmodels as sm

tf = pytest.importorskip("tensorflow")
X = tf.TensorSpec([None, 4], tf.float32)


def _rejected(validator: Validator, path: Path, tmp_path: Path, code: str) -> str:
    with pytest.raises(Rejected) as info:
        validator.validate_saved_model(path, tmp_path / "work")
    assert info.value.code == code, str(info.value)
    return str(info.value)


# ---- ops that take a graph, a dataset, a file name or a debug sink ----------------------------


def test_dataset_from_graph(validator, tmp_path):
    def body(x):
        ds = tf.raw_ops.DatasetFromGraph(graph_def=tf.constant(b""))
        (el,) = tf.raw_ops.DatasetToSingleElement(
            dataset=ds, output_types=[tf.float32], output_shapes=[[]]
        )
        return x + el

    model = sm.save_serving(tmp_path / "m", body)
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "DatasetFromGraph (runs a graph" in message
    assert "DatasetToSingleElement" in message


def test_debug_numeric_summary_with_a_file_url(validator, tmp_path):
    def body(x):
        v1 = tf.raw_ops.DebugNumericSummary(input=x, debug_urls=["file:///tmp/registrar-dbg"])
        v2 = tf.raw_ops.DebugNumericSummaryV2(input=x, tensor_debug_mode=2)
        return x + tf.cast(tf.reduce_sum(v1) + tf.reduce_sum(tf.cast(v2, tf.float64)), tf.float32)

    model = sm.save_serving(tmp_path / "m", body)
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "DebugNumericSummary (debug or summary" in message
    assert "DebugNumericSummaryV2" in message


def test_matching_files_dataset(validator, tmp_path):
    def body(x):
        ds = tf.raw_ops.MatchingFilesDataset(patterns=tf.constant(["/etc/*"]))
        (name,) = tf.raw_ops.DatasetToSingleElement(
            dataset=ds, output_types=[tf.string], output_shapes=[[]]
        )
        return x + tf.cast(tf.strings.length(name), tf.float32)

    model = sm.save_serving(tmp_path / "m", body)
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "MatchingFilesDataset (tf.data" in message


def test_text_file_table_on_etc_passwd(validator, tmp_path):
    def body(x):
        table = tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)
        init = tf.raw_ops.InitializeTableFromTextFileV2(
            table_handle=table, filename="/etc/passwd", key_index=-2, value_index=-1
        )
        with tf.control_dependencies([init]):
            size = tf.raw_ops.LookupTableSizeV2(table_handle=table)
        return x + tf.cast(size, tf.float32)

    model = sm.save_serving(tmp_path / "m", body)
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "InitializeTableFromTextFileV2 (reads a text file that is not one of" in message


def test_text_file_table_fed_by_a_constant_instead_of_its_asset(validator, tmp_path):
    """The asset model TF writes passes; the same model with the initializer's file name
    replaced by a constant does not."""
    from tests.modelfactory import build_saved_model_with_asset

    model = build_saved_model_with_asset(tmp_path / "m")
    with sm.edit(model) as meta:
        init = sm.function(meta, "__inference__initializer")
        node = next(n for n in init.node_def if n.op == "InitializeTableFromTextFileV2")
        node.input[1] = sm.const(init, "evil_path", [b"/etc/passwd"])
    _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")


def test_unreachable_library_function_is_checked(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    evil = tf.function(lambda s: tf.io.read_file(s), input_signature=[tf.TensorSpec([], tf.string)])
    with sm.edit(model) as meta:
        name = sm.add_library(meta, evil)
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "ReadFile (reads, writes, lists or maps files" in message
    assert f"in library function {name!r}" in message


@pytest.mark.parametrize("op", ["ReadFile", "SaveV2"])
def test_serving_default_calls_a_library_function_by_op_name(validator, tmp_path, op):
    """A node whose op is a library function's name calls it; the function's ops count."""
    model = sm.with_variable(tmp_path / "m")

    def read(x):
        return x + tf.cast(tf.strings.length(tf.io.read_file("/etc/hostname")), tf.float32)

    def save(x):
        tf.raw_ops.SaveV2(prefix="/tmp/pwned", tensor_names=["x"], shape_and_slices=[""],
                          tensors=[x])  # fmt: skip
        return x

    evil = tf.function(read if op == "ReadFile" else save, input_signature=[X])
    with sm.edit(model) as meta:
        name = sm.add_library(meta, evil)
        sm.call_by_op_name(sm.function(meta, "__inference_serve_"), name, ["x"])
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert f"{op} (" in message and f"in library function {name!r}" in message
    if op == "SaveV2":
        assert "checkpoint op outside the save/restore functions" in message


# ---- the saver --------------------------------------------------------------------------------


def test_save_v2_added_to_the_restore_function(validator, tmp_path):
    """TF Serving runs the restore function at load: a SaveV2 there would write a file."""
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        restore = sm.saver_function(meta, "restore")
        node = restore.node_def.add(name="evil_save", op="SaveV2")
        node.input.extend(
            [
                sm.const(restore, "evil_prefix", [b"/tmp/pwned"]),
                sm.const(restore, "evil_names", [b"w"]),
                sm.const(restore, "evil_slices", [b""]),
                "RestoreV2:tensors:0",
            ]
        )
        node.attr["dtypes"].list.type.append(tf.float32.as_datatype_enum)
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "also runs ['SaveV2']" in message


def test_save_v2_to_another_file_added_to_the_save_function(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        save = sm.saver_function(meta, "save")
        original = next(n for n in save.node_def if n.op == "SaveV2")
        node = save.node_def.add()
        node.CopyFrom(original)
        node.name = "evil_save"
        node.input[0] = sm.const(save, "evil_prefix", [b"/tmp/pwned"])
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "/tmp/pwned" in message


def test_restore_from_another_prefix(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        restore = sm.saver_function(meta, "restore")
        node = next(n for n in restore.node_def if n.op == "RestoreV2")
        node.input[0] = sm.const(restore, "evil_prefix", [b"gs://other-bucket/ckpt"])
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "not the SavedModel's own variables prefix" in message


def test_restore_of_a_tensor_the_index_lacks(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        restore = sm.saver_function(meta, "restore")
        names = next(n for n in restore.node_def if n.name == "RestoreV2/tensor_names")
        names.attr["value"].tensor.string_val[0] = b"not/in/the/index"
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "not/in/the/index" in message


def test_serving_default_calls_the_restore_function(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        restore = sm.saver_function(meta, "restore").signature.name
        sm.call_by_op_name(sm.function(meta, "__inference_serve_"), restore, ["x", "x"])
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "is used outside the saver" in message


def test_saver_node_feeding_the_serving_graph(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        restore = meta.saver_def.restore_op_name
        serving = next(n for n in meta.graph_def.node if n.name == "StatefulPartitionedCall")
        serving.input.append(f"^{restore}")
    message = _rejected(validator, model, tmp_path, "savedmodel.bad_saver")
    assert "is used by other nodes" in message


def test_filename_placeholder_with_a_default(validator, tmp_path):
    model = sm.with_variable(tmp_path / "m")
    with sm.edit(model) as meta:
        node = next(n for n in meta.graph_def.node if n.name == "saver_filename")
        node.op = "PlaceholderWithDefault"
    _rejected(validator, model, tmp_path, "savedmodel.bad_saver")


def test_text_file_table_named_by_a_request_listed_as_an_asset(validator, tmp_path):
    """A signature input declared an asset would let each request name the file to read."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="path")])
    def serve(path):
        table = tf.raw_ops.HashTableV2(key_dtype=tf.string, value_dtype=tf.int64)
        init = tf.raw_ops.InitializeTableFromTextFileV2(
            table_handle=table, filename=path, key_index=-2, value_index=-1
        )
        with tf.control_dependencies([init]):
            return {"size": tf.raw_ops.LookupTableSizeV2(table_handle=table)}

    module.serve = serve
    model = tmp_path / "m"
    tf.saved_model.save(module, str(model), signatures={"serving_default": serve})
    (model / "assets").mkdir(exist_ok=True)
    (model / "assets" / "vocab.txt").write_text("a\n")
    with sm.edit(model) as meta:
        asset = meta.asset_file_def.add(filename="vocab.txt")
        asset.tensor_info.name = meta.signature_def["serving_default"].inputs["path"].name
    message = _rejected(validator, model, tmp_path, "savedmodel.disallowed_op")
    assert "InitializeTableFromTextFileV2" in message
