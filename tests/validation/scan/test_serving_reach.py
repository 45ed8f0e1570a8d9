"""The serving-compatibility check judges what the serving image runs: the graph and the library
functions its nodes reach. The op allowlist (security) still judges every function. TF 2.15.1
itself loading the unreached cases is in tests/validation/corpus (test_corpus_serves_in_tf215)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.errors import Rejected
from handlers.settings import Settings
from handlers.validation.scan import serving_ops
from handlers.validation.scan.graph import GraphIndex
from handlers.validation.scan.savedmodel import _parse, scan_saved_model_dir
from tests.validation.scan import savedmodels as sm

tf = pytest.importorskip("tensorflow")


PREBUILT_2_15 = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def _scan(model: Path) -> None:
    """Against Vertex's prebuilt TF 2.15 image, which lacks DecodeWebP and MatMul's grad_a (the
    default TF Serving 2.20 image has both)."""
    scan_saved_model_dir(model, Settings(project="test-project", serving_image=PREBUILT_2_15))


def unreached_method(directory: Path, method: Any) -> Path:
    """A plain model plus a tf.function that only the object graph names (as Keras 2 keeps
    adapt_step, and tf_keras under TF >= 2.16 keeps gradient functions)."""
    module = tf.Module()
    module.w = tf.Variable(tf.ones([4, 2]), name="w")
    module.extra = tf.function(method, input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    module.extra.get_concrete_function()
    return sm.save_serving(directory, lambda x: tf.matmul(x, module.w), module=module)


def _grad_a(x: Any) -> Any:
    return tf.raw_ops.MatMul(a=x, b=tf.ones([4, 2]), grad_a=True)


def _webp(x: Any) -> Any:
    image = tf.raw_ops.DecodeWebP(contents=tf.constant(b""), channels=3)
    return x + tf.cast(tf.reduce_sum(image), tf.float32)


@pytest.mark.parametrize("method", [_grad_a, _webp], ids=["MatMul.grad_a", "DecodeWebP"])
def test_what_serving_never_calls_is_not_judged(tmp_path: Path, method: Any):
    model = unreached_method(tmp_path / "m", method)
    meta = _parse(model / "saved_model.pb")
    index = GraphIndex(meta)
    unreached = set(index.functions) - serving_ops.serving_places(index)
    assert any(method.__name__ in name for name in unreached), unreached
    _scan(model)


@pytest.mark.parametrize("method", [_grad_a, _webp], ids=["MatMul.grad_a", "DecodeWebP"])
def test_what_a_signature_reaches_through_nested_calls_is_judged(tmp_path: Path, method: Any):
    inner = tf.function(method)

    @tf.function
    def outer(x: Any) -> Any:
        return tf.cond(tf.reduce_sum(x) > 0, lambda: inner(x), lambda: inner(-x))

    model = sm.save_serving(tmp_path / "m", outer)
    with pytest.raises(Rejected) as info:
        _scan(model)
    assert info.value.code == "savedmodel.serving_incompatible"


def test_the_op_allowlist_still_covers_unreached_functions(tmp_path: Path):
    """Security stays stricter: an unreached function that makes a dataset is refused."""

    def pipeline(x: Any) -> Any:
        return x + tf.cast(
            tf.data.Dataset.range(3).reduce(tf.constant(0, tf.int64), tf.add), tf.float32
        )

    with pytest.raises(Rejected) as info:
        _scan(unreached_method(tmp_path / "m", pipeline))
    assert info.value.code == "savedmodel.disallowed_op"
    assert "Dataset" in str(info.value)


def test_iterator_consumer_without_a_creator_passes_and_with_one_is_refused(tmp_path: Path):
    """Keras 2's adapt_step shape: IteratorGetNext on an iterator handed in as an argument."""
    module = tf.Module()
    module.w = tf.Variable(tf.ones([4, 2]), name="w")

    @tf.function
    def adapt_step(iterator: Any) -> Any:
        return next(iterator)

    dataset = tf.data.Dataset.from_tensors(tf.zeros([4]))
    module.adapt_step = adapt_step
    module.adapt_step.get_concrete_function(iter(dataset))
    model = sm.save_serving(tmp_path / "ok", lambda x: tf.matmul(x, module.w), module=module)
    meta = _parse(model / "saved_model.pb")
    ops = {n.op for f in meta.graph_def.library.function for n in f.node_def}
    assert "IteratorGetNext" in ops
    _scan(model)

    def makes_its_own(x: Any) -> Any:
        return x + next(iter(tf.data.Dataset.from_tensors(tf.zeros([4]))))

    with pytest.raises(Rejected) as info:
        _scan(sm.save_serving(tmp_path / "bad", makes_its_own))
    assert info.value.code == "savedmodel.disallowed_op"
