"""The object graph `tf.saved_model.load` wires is held to the graph's rules: hostile SavedModels
rebuilt from a real TensorFlow export (`object_graphs`), each rejected by the static scan
(through the Validator, before the sandbox loads anything) with its own reason code; real
exports (a table from an asset, a Keras export with a StringLookup, captured constants) pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from handlers.errors import Rejected
from handlers.validation.scan import object_graph, op_allowlist
from handlers.validation.scan.graph import GraphIndex
from handlers.validation.scan.savedmodel import _parse, scan_saved_model_dir
from handlers.validation.validator import Validator
from tests.validation.scan import object_graphs as og
from tests.validation.scan import savedmodels as sm

tf = pytest.importorskip("tensorflow")
PATH = "savedmodel.object_graph_path"
MISMATCH = "savedmodel.object_graph_mismatch"


@pytest.fixture(scope="module")
def table_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return og.build(tmp_path_factory.mktemp("og") / "table")


@pytest.fixture
def fresh(table_model: Path, tmp_path: Path) -> Callable[[], Path]:
    def copy() -> Path:
        return Path(shutil.copytree(table_model, tmp_path / "m"))

    return copy


def _rejected(validator: Validator, path: Path, tmp_path: Path, code: str) -> str:
    with pytest.raises(Rejected) as info:
        validator.validate_saved_model(path, tmp_path / "work")
    assert info.value.code == code, str(info.value)
    return str(info.value)


def _scan(path: Path, settings: Any, code: str) -> str:
    with pytest.raises(Rejected) as info:
        scan_saved_model_dir(path, settings)
    assert info.value.code == code, str(info.value)
    return str(info.value)


# ---- the file name of the table initializer, re-pointed -----------------------------------


def test_a_constant_holding_a_canary_path_is_rejected(validator, fresh, tmp_path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("canary-secret-object-graph\n")
    model = og.bind_constant(fresh(), str(canary))
    message = _rejected(validator, model, tmp_path, PATH)
    assert "bound, in the object graph, to constant" in message
    assert str(canary) not in message and "canary-secret" not in message


def test_the_constant_attack_is_real_in_tf_saved_model_load(fresh, tmp_path) -> None:
    """Unchecked, the loader reads the canary: the table (vocab.txt has 5 lines) is filled from
    the 3-line canary file, while the graph the other checks read is TensorFlow's own."""
    canary = tmp_path / "canary.txt"
    canary.write_text("a\nb\nc\n")
    model = og.bind_constant(fresh(), str(canary))
    code = (
        "import tensorflow as tf, sys; m = tf.saved_model.load(sys.argv[1]); "
        "print('SIZE', float(m.serve(tf.zeros([1, 4]))['y'][0, 0]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=True
    )
    assert "SIZE 3.0" in out.stdout


@pytest.mark.parametrize(
    ("edit", "code", "words"),
    [
        (og.bind_variable, PATH, "to variable"),
        (og.bind_captured_tensor, PATH, "to captured tensor"),
        (og.bind_resource, PATH, "to resource object"),
        (og.unbind, PATH, "which the loader lets its caller choose"),
        (og.bind_user_object, MISMATCH, "a user_object, as a captured input"),
        (og.second_asset, MISMATCH, "passes asset file 'vocab.txt'"),
    ],
    ids=["variable", "captured_tensor", "resource", "call_argument", "user_object", "other_asset"],
)
def test_each_object_kind_in_place_of_the_asset_is_rejected(
    validator, fresh, tmp_path, edit, code, words
) -> None:
    message = _rejected(validator, edit(fresh()), tmp_path, code)
    assert words in message


@pytest.mark.parametrize("index", [1, 7, -1])
def test_an_asset_index_out_of_range_is_rejected(validator, fresh, tmp_path, index) -> None:
    message = _rejected(validator, og.asset_index(fresh(), index), tmp_path, PATH)
    assert f"points to asset entry {index}" in message


def test_an_asset_with_an_empty_name_is_rejected(validator, fresh, tmp_path) -> None:
    message = _rejected(validator, og.asset_named(fresh(), ""), tmp_path, PATH)
    assert "is not a file of assets/" in message


def test_an_asset_name_that_leaves_assets_is_rejected(validator, fresh, tmp_path) -> None:
    """The object's asset entry is the one the graph names: the existing name rule applies."""
    _rejected(
        validator,
        og.asset_named(fresh(), "../../canary.txt"),
        tmp_path,
        "savedmodel.bad_asset_name",
    )


# ---- structure: every kind and reference the loader follows -------------------------------


def _meta_edit(model: Path, change: Callable[[Any], None]) -> Path:
    with sm.edit(model) as meta:
        change(meta)
    return model


def _first(meta: Any, kind: str) -> Any:
    return next(n for n in meta.object_graph_def.nodes if n.WhichOneof("kind") == kind)


def _initializer_name(meta: Any) -> str:
    entry, _ = og.initializer(meta)
    return next(k for k, v in meta.object_graph_def.concrete_functions.items() if v is entry)


def _add_saver_function(meta: Any) -> None:
    restore = sm.saver_function(meta, "restore").signature.name
    meta.object_graph_def.concrete_functions[restore].bound_inputs.extend([])
    obj = meta.object_graph_def.nodes.add()
    obj.bare_concrete_function.concrete_function_name = restore
    meta.object_graph_def.nodes[0].children.add(node_id=len(meta.object_graph_def.nodes) - 1,
                                                local_name="evil")  # fmt: skip


STRUCTURE = {
    "registered_name": (lambda m: setattr(_first(m, "resource"), "registered_name", "tf.Evil"),
                        "registered as 'tf.Evil'"),
    "registered_name_of_another_kind": (
        lambda m: setattr(_first(m, "asset"), "registered_name", "tf.TrackableConstant"),
        "registered as 'tf.TrackableConstant'"),
    "registered_saver": (lambda m: setattr(m.object_graph_def.nodes[0], "registered_saver",
                                           "tf.EvilSaver"), "registered checkpoint saver"),
    "bound_input_out_of_range": (
        lambda m: m.object_graph_def.concrete_functions[_initializer_name(m)].bound_inputs.__setitem__(
            -1, 999), "is object 999"),
    "child_out_of_range": (lambda m: m.object_graph_def.nodes[0].children.add(node_id=-3),
                           "is object -3"),
    "no_kind": (lambda m: m.object_graph_def.nodes.add(), "has no kind"),
    "function_not_in_library": (
        lambda m: _first(m, "function").function.concrete_functions.append("__inference_missing_1"),
        "'__inference_missing_1'"),
    "constant_not_a_const": (
        lambda m: setattr(m.object_graph_def.nodes.add().constant, "operation",
                          "asset_path_initializer"), "which is not a Const of the graph"),
    "resource_initializer_not_a_function": (
        lambda m: next(c for c in _first(m, "resource").children
                       if c.local_name == "_initialize").__setattr__("node_id", 0),
        "_initialize is not a function"),
    "captured_tensor_of_no_function": (
        lambda m: setattr(m.object_graph_def.nodes.add().captured_tensor, "concrete_function",
                          "nope"), "not a library function"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(STRUCTURE))
def test_what_the_loader_cannot_be_checked_to_do_is_rejected(
    validator, fresh, tmp_path, case
) -> None:
    change, words = STRUCTURE[case]
    message = _rejected(validator, _meta_edit(fresh(), change), tmp_path, MISMATCH)
    assert words in message


def test_a_checkpoint_function_the_loader_can_call_is_rejected(validator, fresh, tmp_path):
    """The saver's restore function (RestoreV2 on a prefix its caller names) made callable by
    the loader as an attribute of the root object."""
    message = _rejected(validator, _meta_edit(fresh(), _add_saver_function), tmp_path, PATH)
    assert "reaches the checkpoint function the saver_def names" in message


def test_a_constant_named_by_the_graph_and_the_object_graph_must_agree(tmp_path) -> None:
    """A captured constant re-pointed at another graph Const (a path, say) while the graph's
    call still passes the original: the two views disagree."""
    mod = tf.Module()
    values = tf.constant([1.0, 2.0, 3.0, 4.0])
    model = sm.save_serving(tmp_path / "m", lambda x: x * values, module=mod)

    def change(meta: Any) -> None:
        node = meta.graph_def.node.add(name="other_const", op="Const")
        node.attr["dtype"].type = tf.string.as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(b"/etc/passwd"))
        _first(meta, "constant").constant.operation = "other_const"

    _meta_edit(model, change)
    meta = _parse(model / "saved_model.pb")
    with pytest.raises(Rejected) as info:
        object_graph.check_object_graph(model, GraphIndex(meta))
    assert info.value.code == MISMATCH
    assert "passes constant 'Const'" in str(info.value)


def test_too_many_objects_are_refused(fresh, settings, monkeypatch) -> None:
    monkeypatch.setattr(object_graph, "MAX_OBJECTS", 5)
    assert "the limit is 5" in _scan(fresh(), settings, MISMATCH)


def test_every_file_reading_op_of_the_allowlist_has_its_path_input_named() -> None:
    """When the op allowlist lets another op read a file, this check must know its argument."""
    readers = {op for op, rule in op_allowlist.CONDITIONAL.items() if rule == "asset_file"}
    assert readers == set(object_graph.PATH_INPUTS)


# ---- real exports pass ---------------------------------------------------------------------


def test_a_table_from_an_asset_passes(table_model, settings) -> None:
    notes = scan_saved_model_dir(table_model, settings).notes
    assert any(n.startswith("object graph: ") for n in notes)


def test_a_keras_export_with_a_string_lookup_passes(tmp_path, settings) -> None:
    import keras

    inp = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(inp)
    out = keras.layers.Dense(2)(keras.ops.cast(ids, "float32"))
    keras.Model(inp, out).export(str(tmp_path / "k"))
    meta = _parse(tmp_path / "k" / "saved_model.pb")
    kinds = {n.WhichOneof("kind") for n in meta.object_graph_def.nodes}
    assert {"constant", "resource", "variable"} <= kinds  # the kinds the loader binds
    notes = object_graph.check_object_graph(tmp_path / "k", GraphIndex(meta))
    assert notes and notes[0].startswith("object graph: ")


def test_a_tf1_style_model_without_an_object_graph_is_left_to_the_graph_checks(fresh) -> None:
    model = _meta_edit(fresh(), lambda m: m.ClearField("object_graph_def"))
    meta = _parse(model / "saved_model.pb")
    assert object_graph.check_object_graph(model, GraphIndex(meta)) == []
