"""The op allowlist and the serving registries are generated data: they must cover and match the
installed TensorFlow, so that upgrading TensorFlow is a reviewed decision, not a silent default."""

from __future__ import annotations

import pytest

from dev import gen_op_lists
from handlers.validation.scan import op_allowlist as allow

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def registered() -> set[str]:
    return {op.name for op in gen_op_lists.registered_ops()}  # minus DEVICE_DEPENDENT


def test_every_installed_op_is_allowed_or_denied(registered):
    """A new TensorFlow with an op in neither list fails here: regenerate the allowlist
    (dev/gen_op_lists.py allowlist) and review the diff."""
    listed = allow.ALLOWED | allow.SAVER_ONLY | set(allow.CONDITIONAL) | set(allow.DENIED)
    assert sorted(registered - listed) == []


def test_lists_are_disjoint():
    groups = [allow.ALLOWED, allow.SAVER_ONLY, set(allow.CONDITIONAL), set(allow.DENIED)]
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not set(a) & set(b)
    assert set(allow.DENIED.values()) <= set(allow.REASONS)


def test_committed_allowlist_is_what_the_generator_writes():
    import tensorflow as tf

    assert allow.TF_VERSION == tf.__version__
    with open(allow.__file__, encoding="utf-8") as handle:
        assert handle.read() == gen_op_lists.allowlist(), "regenerate op_allowlist.py"


def test_committed_registry_of_the_installed_version_is_current():
    import tensorflow as tf

    from handlers.validation.scan.serving_registry import tf_2_21

    assert tf.__version__.startswith("2.21.")
    with open(tf_2_21.__file__, encoding="utf-8") as handle:
        assert handle.read() == gen_op_lists.registry(), "regenerate serving_registry/tf_2_21.py"


@pytest.mark.parametrize(
    ("op", "reason"),
    [
        ("DatasetFromGraph", "graph"),
        ("XlaCallModule", "graph"),
        ("CacheDataset", "dataset"),
        ("CacheDatasetV2", "dataset"),
        ("MatchingFilesDataset", "dataset"),
        ("SnapshotDatasetReader", "dataset"),
        ("InitializeTableFromDataset", "dataset"),
        ("DebugNumericSummary", "debug_summary"),
        ("DebugNumericSummaryV2", "debug_summary"),
        ("DebugIdentityV2", "debug_summary"),
        ("CreateSummaryFileWriter", "debug_summary"),
        ("ReadFile", "file"),
        ("WriteFile", "file"),
        ("MatchingFiles", "file"),
        ("RecordInput", "file"),
        ("DecodeProtoV2", "file"),
        ("EncodeProto", "file"),
        ("FixedUnigramCandidateSampler", "file"),
        ("GenerateVocabRemapping", "file"),
        ("LoadAndRemapMatrix", "file"),
        ("ImmutableConst", "file"),
        ("Save", "file"),
        ("Restore", "file"),
        ("RestoreSlice", "file"),
        ("PyFunc", "python"),
        ("EagerPyFunc", "python"),
        ("RemoteCall", "network"),
        ("CollectiveReduceV2", "network"),
        ("Abort", "side_effect"),
        ("FIFOQueueV2", "side_effect"),
    ],
)
def test_ops_that_reach_outside_are_denied(op, reason):
    assert allow.DENIED[op] == reason


def test_saver_and_conditional_ops():
    assert {"SaveV2", "RestoreV2", "MergeV2Checkpoints"} <= allow.SAVER_ONLY
    assert allow.CONDITIONAL["InitializeTableFromTextFileV2"] == "asset_file"
    assert allow.CONDITIONAL["PrintV2"] == "std_stream"


def test_what_inference_needs_is_allowed():
    needed = {
        *("MatMul", "BiasAdd", "Conv2D", "Relu", "Softmax", "FusedBatchNormV3", "Const"),
        *("Placeholder", "Identity", "StatefulPartitionedCall", "While", "StatelessIf"),
        *("VarHandleOp", "ReadVariableOp", "AssignVariableOp", "HashTableV2"),
        *("LookupTableFindV2", "LookupTableImportV2", "TensorListGetItem", "StringSplitV2"),
        *("ParseExampleV2", "DecodeJpeg", "NoOp"),
    }
    assert needed <= allow.ALLOWED


def test_every_op_allowed_from_a_denied_library_has_a_reason_and_its_creators_stay_denied():
    """Iterator consumers are allowed (Keras 2 adapt_step functions keep them) only because
    nothing in an accepted graph can create an iterator: every creator stays denied."""
    assert set(allow.ALLOWED_BECAUSE) == {"IteratorGetNext", "IteratorGetNextSync"}
    assert set(allow.ALLOWED_BECAUSE) <= allow.ALLOWED
    assert all("iterator" in why for why in allow.ALLOWED_BECAUSE.values())
    creators = {
        *("Iterator", "IteratorV2", "AnonymousIterator", "AnonymousIteratorV2"),
        *("AnonymousIteratorV3", "MakeIterator", "OneShotIterator", "DeserializeIterator"),
        *("IteratorFromStringHandle", "IteratorFromStringHandleV2", "MultiDeviceIterator"),
        *("AnonymousMultiDeviceIterator", "AnonymousMultiDeviceIteratorV3"),
        *("TensorDataset", "TensorSliceDataset", "RangeDataset", "TFRecordDataset"),
        *("DatasetFromGraph", "GeneratorDataset", "IteratorGetNextAsOptional"),
    }
    assert {op: allow.DENIED.get(op) for op in creators} == {
        op: ("graph" if op == "DatasetFromGraph" else "dataset") for op in creators
    }
    iterator_ops = {op for op in allow.ALLOWED if "Iterator" in op or op.endswith("Dataset")}
    assert iterator_ops == set(allow.ALLOWED_BECAUSE)
