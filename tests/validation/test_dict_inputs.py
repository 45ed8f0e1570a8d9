"""A Keras model built on a dict of inputs (KerasHub's backbones and tasks take `token_ids`,
`padding_mask`, ...) is called with that dict by the sandbox's export and smoke test, not with a
list (which Keras refuses: "The structure of `inputs` doesn't match")."""

from __future__ import annotations

from pathlib import Path

import pytest

keras = pytest.importorskip("keras")


def test_dict_input_model_registers_with_its_named_inputs(validator, tmp_path: Path):
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(10, 4)(ids)
    x = x * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    out = keras.layers.Dense(2, name="logits")(keras.layers.GlobalAveragePooling1D()(x))
    path = tmp_path / "m.keras"
    keras.Model({"token_ids": ids, "padding_mask": mask}, out).save(path)
    report = validator.validate_keras(path, tmp_path / "work")
    assert report.smoke_test == "passed"
    assert {t.name for t in report.inputs} == {"token_ids", "padding_mask"}
