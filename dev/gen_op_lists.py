"""Generates the op data the SavedModel scan uses, from a TensorFlow wheel's own op registry.

Two outputs, both checked in as Python modules (the function is deployed as `*.py` only):

* the op **allowlist** (`handlers/validation/scan/op_allowlist.py`) from the TensorFlow installed
  in `.venv` (the one the sandbox runs)::

      .venv/bin/python dev/gen_op_lists.py allowlist \
          > handlers/validation/scan/op_allowlist.py

* a **serving registry** per TensorFlow version: {op: attrs (default? allowed dtypes)}, the
  GraphDef versions and the DataType values that version knows; read by the serving-runtime
  compatibility check. Run it with the interpreter of the wanted version::

      .venv/bin/python dev/gen_op_lists.py registry \
          > handlers/validation/scan/serving_registry/tf_2_21.py
      .venv-tf215/bin/python dev/gen_op_lists.py registry \
          > handlers/validation/scan/serving_registry/tf_2_15.py

  (`make .venv-tf215/.installed` makes the 2.15.1 venv.) For another serving version, make a venv
  with that `tensorflow-cpu` and run the same command into `tf_<major>_<minor>.py`.

* `diff OLD NEW` prints what NEW's registry has that OLD's has not (ops, attrs)::

      .venv/bin/python dev/gen_op_lists.py diff 2.15 2.21

This script imports only TensorFlow (never `handlers`), so it runs in a bare TF venv. Tests:
`tests/validation/scan/test_op_allowlist.py` fails when the installed TensorFlow has an op in
neither list, or when the committed registry drifts from the installed TensorFlow's.

How the allowlist is derived (review these tables, not the 1900 op names): every op TensorFlow
exposes in `tf.raw_ops` has a wrapper in a `gen_<library>_ops` module, i.e. TensorFlow's own
classification of the op's kernel library. `MODULES` says, per library, whether pure inference
needs it (allowed) or why not (a reason category). `EXCEPTIONS` overrides single ops in both
directions. Ops without a `tf.raw_ops` wrapper are internal, test-only or accelerator plumbing.
A library missing from `MODULES` stops the generator: a TensorFlow upgrade that adds one is a
decision, not a default.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections import defaultdict

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Reason categories of denied ops; the scan's rejection message quotes these.
REASONS = {
    "graph": "runs a graph or compiled program carried as data",
    "dataset": "tf.data pipeline or iterator (reads, caches or snapshots files; runs functions)",
    "file": "reads, writes, lists or maps files named by the graph",
    "network": "reaches other processes or machines (RPC, collectives, send/recv, file systems)",
    "debug_summary": "debug or summary sink or producer",
    "python": "calls back into Python",
    "side_effect": "process- or session-wide state or effects (queues, barriers, session "
    "handles, mutexes, abort, uninitialised memory)",
    "training": "training-only (optimizer updates, samplers, gradients)",
    "accelerator": "TPU/XLA/DTensor/multi-device plumbing absent from CPU serving",
    "internal": "TensorFlow-internal or test op (no tf.raw_ops wrapper)",
}

ALLOW = "allow"
# gen_<library>_ops -> ALLOW or a reason category (every library TensorFlow has: see above)
MODULES = {
    **dict.fromkeys(
        (
            "gen_array_ops", "gen_math_ops", "gen_nn_ops", "gen_image_ops", "gen_sparse_ops",
            "gen_linalg_ops", "gen_spectral_ops", "gen_special_math_ops",
            "gen_sparse_csr_matrix_ops", "gen_bitwise_ops", "gen_manip_ops", "gen_set_ops",
            "gen_ctc_ops", "gen_audio_ops", "gen_string_ops", "gen_parsing_ops",
            "gen_control_flow_ops", "gen_functional_ops", "gen_list_ops", "gen_map_ops",
            "gen_resource_variable_ops", "gen_state_ops", "gen_lookup_ops", "gen_logging_ops",
            "gen_data_flow_ops", "gen_random_ops", "gen_stateful_random_ops",
            "gen_stateless_random_ops", "gen_stateless_random_ops_v2",
            "gen_random_index_shuffle_ops", "gen_uniform_quant_ops", "gen_rnn_ops",
            "gen_cudnn_rnn_ops", "gen_ragged_array_ops", "gen_ragged_conversion_ops",
            "gen_ragged_math_ops", "gen_count_ops", "gen_composite_tensor_ops",
            "gen_optional_ops", "gen_batch_ops", "gen_boosted_trees_ops", "gen_sync_ops",
        ),
        ALLOW,
    ),
    **dict.fromkeys(("gen_dataset_ops", "gen_experimental_dataset_ops"), "dataset"),
    **dict.fromkeys(("gen_io_ops", "gen_checkpoint_ops", "gen_filesystem_ops"), "file"),
    # descriptor_source names a file of proto descriptors
    **dict.fromkeys(("gen_decode_proto_ops", "gen_encode_proto_ops"), "file"),
    **dict.fromkeys(("gen_collective_ops", "gen_nccl_ops", "gen_sendrecv_ops"), "network"),
    **dict.fromkeys(("gen_summary_ops", "gen_debug_ops"), "debug_summary"),
    "gen_script_ops": "python",
    **dict.fromkeys(
        ("gen_training_ops", "gen_sdca_ops", "gen_clustering_ops",
         "gen_candidate_sampling_ops"),
        "training",
    ),
    **dict.fromkeys(("gen_tpu_ops", "gen_tpu_partition_ops", "gen_xla_ops"), "accelerator"),
    "gen_user_ops": "internal",  # `Fact`, an example op
}  # fmt: skip

# Single ops that differ from their library's rule. Reviewed one by one.
# Ops allowed although their library is denied, each with the reason it is safe; written into
# op_allowlist.py as ALLOWED_BECAUSE (the scan's reviewers read it there).
#
# Iterator consumers: Keras 2 SavedModels of a layer with `adapt()` (TextVectorization,
# Normalization, ...) keep the traced `adapt_step` function, which pulls batches with
# IteratorGetNext from an iterator handed in as its argument; TF Serving never calls it. An
# iterator consumer only reads an iterator resource that something else created: every op that
# creates a dataset or an iterator (Iterator, IteratorV2, AnonymousIterator*, MakeIterator,
# OneShotIterator, IteratorFromStringHandle*, DeserializeIterator, MultiDeviceIterator*, every
# *Dataset op) stays denied, so in an accepted graph no iterator exists; a handle fed in a request
# names a resource of the serving session, which cannot hold one, and resource lookups are
# type-checked. Without its input it can only fail.
ALLOWED_BECAUSE = {
    op: "consumes an iterator; every op that creates a dataset or an iterator is denied, so in an "
    "accepted graph it has no input and can only fail (Keras 2 adapt_step functions keep it)"
    for op in ("IteratorGetNext", "IteratorGetNextSync")
}
# Registered only when TensorFlow finds CUDA libraries on the machine: left out so that the
# generated file does not depend on the machine (internal ops: unlisted, hence denied).
DEVICE_DEPENDENT = frozenset({"_CopyFromGpuToHost", "_CopyFromHostToGpu"})

EXCEPTIONS = {
    **dict.fromkeys(ALLOWED_BECAUSE, "allow"),
    # gen_array_ops
    "ImmutableConst": "file",  # memory-maps the file named by memory_region_name
    "DebugGradientIdentity": "debug_summary",
    "DebugGradientRefIdentity": "debug_summary",
    "Empty": "side_effect",  # init=false returns uninitialised memory (other requests' data)
    # gen_functional_ops
    "RemoteCall": "network",  # runs a function on another task
    "SymbolicGradient": "training",
    # gen_control_flow_ops
    "Abort": "side_effect",  # kills the serving process
    # gen_logging_ops: summaries are not inference
    **dict.fromkeys(
        (
            "AudioSummary",
            "AudioSummaryV2",
            "HistogramSummary",
            "ImageSummary",
            "MergeSummary",
            "ScalarSummary",
            "TensorSummary",
            "TensorSummaryV2",
        ),
        "debug_summary",
    ),
    # gen_lookup_ops: tables from text files are CONDITIONAL (below); from a dataset: no
    "InitializeTableFromDataset": "dataset",
    # gen_data_flow_ops: keep TensorArray, Stack, DynamicPartition/Stitch; cross-run state out
    "RecordInput": "file",  # reads files matching a pattern
    **dict.fromkeys(
        ("GetSessionHandle", "GetSessionHandleV2", "GetSessionTensor", "DeleteSessionTensor"),
        "side_effect",
    ),
    # gen_sparse_ops: SparseTensorsMap containers shared across runs by name
    **dict.fromkeys(
        ("AddManySparseToTensorsMap", "AddSparseToTensorsMap", "TakeManySparseFromTensorsMap"),
        "side_effect",
    ),
    # gen_resource_variable_ops: tf.CriticalSection, never in a Keras/serving graph
    **dict.fromkeys(("MutexV2", "MutexLock", "ConsumeMutexLock"), "side_effect"),
    # gen_clustering_ops: KMeans inference uses NearestNeighbors (pure math)
    "NearestNeighbors": ALLOW,
    # gen_candidate_sampling_ops: reads vocab_file
    "FixedUnigramCandidateSampler": "file",
    # gen_checkpoint_ops
    "GenerateVocabRemapping": "file",
    "LoadAndRemapMatrix": "file",
}


def _data_flow_rule(op: str) -> str | None:
    """gen_data_flow_ops holds both TensorArray/Stack (tf.while machinery) and TF1 input-pipeline
    state (queues, barriers, accumulators, staging areas)."""
    if op.startswith(("TensorArray", "Stack", "DynamicPartition", "DynamicStitch")):
        return ALLOW
    if op == "ParallelDynamicStitch":
        return ALLOW
    return "side_effect"


def _boosted_trees_rule(op: str) -> str | None:
    """Inference of a TF boosted-trees export: deserialize the ensemble, bucketize, predict."""
    inference = {
        "BoostedTreesEnsembleResourceHandleOp", "BoostedTreesCreateEnsemble",
        "BoostedTreesDeserializeEnsemble", "BoostedTreesPredict", "BoostedTreesBucketize",
        "IsBoostedTreesEnsembleInitialized", "BoostedTreesGetEnsembleStates",
        "BoostedTreesSerializeEnsemble", "BoostedTreesQuantileStreamResourceHandleOp",
        "BoostedTreesCreateQuantileStreamResource",
        "BoostedTreesQuantileStreamResourceDeserialize",
        "BoostedTreesQuantileStreamResourceGetBucketBoundaries",
        "IsBoostedTreesQuantileStreamResourceInitialized",
    }  # fmt: skip
    return ALLOW if op in inference else "training"


MODULE_RULES = {"gen_data_flow_ops": _data_flow_rule, "gen_boosted_trees_ops": _boosted_trees_rule}

# Checkpoint ops: only inside the save/restore functions the saver_def names (scan/saver.py).
SAVER_ONLY = ("SaveV2", "RestoreV2", "MergeV2Checkpoints", "ShardedFilename", "ShardedFilespec")
# Allowed only in the shape the scan checks (scan/ops.py says how).
CONDITIONAL = {
    "InitializeTableFromTextFile": "asset_file",
    "InitializeTableFromTextFileV2": "asset_file",
    "PrintV2": "std_stream",
}

# Ops without a tf.raw_ops wrapper: by name.
_UNWRAPPED_PREFIXES = (
    ("Xla", "accelerator"), ("TPU", "accelerator"), ("Tpu", "accelerator"),
    ("DTensor", "accelerator"), ("Rpc", "network"), ("DeleteRpc", "network"),
)  # fmt: skip
_UNWRAPPED_NAMES = {
    "DatasetFromGraph": "graph",
    "MlirPassthroughOp": "graph",  # an MLIR module as an attribute
    "XlaCallModule": "graph",  # a serialized StableHLO module (jax2tf)
    "XlaCustomCall": "graph",  # calls a native custom-call target by name
    "XlaCustomCallV2": "graph",
    "XlaLaunch": "graph",  # a compiled XLA cluster
    "XlaLaunchV2": "graph",
    "Skipgram": "file",
    "DumpTensor": "file",
    "CalibrationStatisticsSaver": "file",
    "CopyToMesh": "accelerator",
    "CopyToMeshGrad": "accelerator",
}


def registered_ops() -> list:  # list[OpDef]
    """Every OpDef registered in the running TensorFlow."""
    import tensorflow  # noqa: F401  registers the ops
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session as tf_session

    buf = tf_session.TF_GetAllOpList()
    data = buf if isinstance(buf, bytes) else tf_session.TF_GetBuffer(buf)
    ops = op_def_pb2.OpList()
    ops.ParseFromString(data)
    return sorted((o for o in ops.op if o.name not in DEVICE_DEPENDENT), key=lambda o: o.name)


def raw_ops_modules() -> dict[str, str]:
    """op name -> the gen_*_ops module of its tf.raw_ops wrapper."""
    import tensorflow as tf

    found = {}
    for name in dir(tf.raw_ops):
        module = getattr(getattr(tf.raw_ops, name), "__module__", None) or ""
        if not name.startswith("_") and ".gen_" in f".{module}":
            found[name] = module.rsplit(".", 1)[-1]
    return found


def classify(op: str, module: str | None) -> str:
    """ALLOW, "saver", "conditional" or a reason category for one op."""
    if op in SAVER_ONLY:
        return "saver"
    if op in CONDITIONAL:
        return "conditional"
    if op in EXCEPTIONS:
        return EXCEPTIONS[op]
    if op == "DatasetFromGraph":
        return "graph"  # a GraphDef carried as a tensor (its module says dataset)
    if module is None:
        if op.startswith("_"):
            return "internal"
        if op in _UNWRAPPED_NAMES:
            return _UNWRAPPED_NAMES[op]
        for prefix, reason in _UNWRAPPED_PREFIXES:
            if op.startswith(prefix):
                return reason
        return "internal"
    if module not in MODULES:
        raise SystemExit(
            f"op {op} comes from {module}, a library gen_op_lists.py has no rule for: add it to "
            "MODULES (allowed, or the reason it is denied) after reviewing its ops."
        )
    rule = MODULE_RULES.get(module)
    decided = rule(op) if rule else None
    return decided or MODULES[module]


def _wrapped(names: list[str], indent: str = "") -> str:
    return textwrap.fill(" ".join(names), 96, initial_indent=indent, subsequent_indent=indent)


def allowlist() -> str:
    import tensorflow as tf

    modules = raw_ops_modules()
    groups: dict[str, list[str]] = defaultdict(list)
    for op_def in registered_ops():
        groups[classify(op_def.name, modules.get(op_def.name))].append(op_def.name)
    out = [
        f'"""Op allowlist for SavedModel graphs, generated from TensorFlow {tf.__version__}\'s op',
        "registry by dev/gen_op_lists.py (do not edit; change the rules there and",
        "regenerate). Read by handlers.validation.scan.ops in the function process.",
        "",
        "ALLOWED: ops pure inference needs. SAVER_ONLY: checkpoint ops, only inside the functions",
        "the saver_def names (scan/saver.py). CONDITIONAL: allowed in one checked shape (scan/ops.py).",
        'DENIED: every other registered op, by reason category (REASONS)."""',
        "",
        f'TF_VERSION = "{tf.__version__}"',
        "",
        "REASONS = {",
        *(f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in REASONS.items()),
        "}",
        "",
        "SAVER_ONLY = frozenset(",
        f'    "{" ".join(sorted(groups.pop("saver")))}".split()',
        ")",
        "CONDITIONAL = {",
        *(f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(CONDITIONAL.items())),
        "}",
        "",
        "# Ops of a denied library allowed all the same, and why (dev/gen_op_lists.py)",
        "ALLOWED_BECAUSE = {",
        *(f"    {json.dumps(k)}: {json.dumps(v)}," for k, v in sorted(ALLOWED_BECAUSE.items())),
        "}",
        "",
        f"# {len(groups[ALLOW])} ops",
        'ALLOWED = frozenset(\n    """',
        _wrapped(sorted(groups.pop(ALLOW))),
        '""".split()\n)',
        "",
        "_DENIED = {",
    ]
    groups.pop("conditional", None)
    for reason in REASONS:
        names = sorted(groups.pop(reason, []))
        out += [f"    # {len(names)} ops", f'    "{reason}": """', _wrapped(names, "    "), '""",']
    assert not groups, f"unclassified groups {sorted(groups)}"
    out += [
        "}",
        "DENIED = {op: reason for reason, ops in _DENIED.items() for op in ops.split()}",
        "",
    ]
    return "\n".join(out)


def registry() -> str:
    """This TensorFlow's op registry as a Python module (one op per line)."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    lines = []
    for op_def in registered_ops():
        if op_def.name.startswith("_"):
            continue  # internal ops are denied by the allowlist anyway
        fields = [op_def.name]
        for attr in op_def.attr:
            text = attr.name
            if attr.HasField("default_value"):
                text += "?"
            if attr.type in ("type", "list(type)") and attr.allowed_values.list.type:
                text += ":" + ",".join(str(t) for t in sorted(attr.allowed_values.list.type))
            fields.append(text)
        lines.append(" ".join(fields))
    dtypes = sorted(v for v in types_pb2.DataType.values() if 0 < v < 100)
    return "\n".join(
        [
            f'"""Op registry of TensorFlow {tf.__version__}, generated by',
            "dev/gen_op_lists.py registry (do not edit). One op per line: name, then",
            'its attributes; "attr?" has a default, "attr:1,2" lists the DataType values it allows."""',
            "",
            f'TF_VERSION = "{tf.__version__}"',
            f"GRAPH_DEF_VERSION = {tf.version.GRAPH_DEF_VERSION}",
            f"GRAPH_DEF_VERSION_MIN_CONSUMER = {tf.version.GRAPH_DEF_VERSION_MIN_CONSUMER}",
            f"GRAPH_DEF_VERSION_MIN_PRODUCER = {tf.version.GRAPH_DEF_VERSION_MIN_PRODUCER}",
            "# DataType enum values this version knows",
            '_DTYPES = """',
            " ".join(map(str, dtypes)),
            '"""',
            "DTYPES = frozenset(int(t) for t in _DTYPES.split())",
            'OPS = """',
            *lines,
            '"""',
            "",
        ]
    )


def _load_registry(version: str) -> dict[str, set[str]]:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    path = os.path.join(
        root, "handlers", "validation", "scan", "serving_registry",
        f"tf_{version.replace('.', '_')}.py",
    )  # fmt: skip
    namespace: dict = {}
    with open(path, encoding="utf-8") as handle:
        exec(compile(handle.read(), path, "exec"), namespace)
    ops = {}
    for line in namespace["OPS"].split("\n"):
        if line.strip():
            name, *attrs = line.split()
            ops[name] = {a.split(":")[0].rstrip("?") for a in attrs}
    return ops


def diff(old: str, new: str) -> str:
    a, b = _load_registry(old), _load_registry(new)
    new_ops = sorted(set(b) - set(a))
    new_attrs = {op: sorted(b[op] - a[op]) for op in sorted(set(a) & set(b)) if b[op] - a[op]}
    gone = sorted(set(a) - set(b))
    out = [f"{len(new_ops)} ops in {new} not in {old}:", _wrapped(new_ops, "  ")]
    out.append(f"{len(new_attrs)} ops with attributes {old} does not know:")
    out += [f"  {op}: {', '.join(attrs)}" for op, attrs in new_attrs.items()]
    out.append(f"{len(gone)} ops in {old} gone from {new}:")
    out.append(_wrapped(gone, "  "))
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] == ["allowlist"]:
        sys.stdout.write(allowlist())
    elif argv[:1] == ["registry"]:
        sys.stdout.write(registry())
    elif argv[:1] == ["diff"] and len(argv) == 3:
        sys.stdout.write(diff(argv[1], argv[2]))
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
