"""Static checks of a SavedModel directory without importing TensorFlow.

Parses `saved_model.pb` with a local subset of the protobuf schema (`scan.proto`), requires a
`serving_default` signature, checks the variables index against the shard files, then the graph
(`scan.graph_checks`: op allowlist over the graph and every library function, the saver's
structure, `assets.extra/`, the serving TensorFlow's op registry).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import Rejected
from ...limits import MAX_GRAPH_BYTES, MAX_GRAPH_PARSE_BYTES
from ...object_names import name_problem
from ...settings import Settings
from ..report import TensorInfo
from .graph_checks import check_graph
from .proto import DTYPES, ProtoLimit, parse_limited
from .tensor_bundle import BundleError, Entry, open_bundle_index

SIGNATURE = "serving_default"
_FIX = "Export the model with tf.saved_model.save(model, dir, signatures={'serving_default': f})."


@dataclass(frozen=True)
class SavedModelScan:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    notes: tuple[str, ...]


def scan_saved_model_dir(root: Path, settings: Settings) -> SavedModelScan:
    """Raise `Rejected` with a `savedmodel.*` code unless `root` passes every static check."""
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    if total > settings.max_artifact_bytes:
        raise Rejected(
            f"The SavedModel is {total} bytes; the limit is {settings.max_artifact_bytes} "
            "(MAX_ARTIFACT_BYTES).",
            code="savedmodel.too_large",
        )
    for p in root.rglob("*"):
        if p.is_symlink():
            raise Rejected(
                f"{p.relative_to(root)} is a symbolic link; SavedModels must be plain files.",
                code="savedmodel.symlink",
            )
    meta = _parse(root / "saved_model.pb")
    assets = referenced_assets(meta)
    unsafe = sorted(a for a in assets if name_problem(a))
    if unsafe:  # TF joins it to assets/: '../..' would read any file at load time
        raise Rejected(
            f"the graph names asset file {unsafe[0]!r}, which is not a plain path inside "
            f"assets/ ({name_problem(unsafe[0])}). {_FIX}",
            code="savedmodel.bad_asset_name",
        )
    missing = sorted(a for a in assets if not (root / "assets" / a).is_file())
    if missing:
        raise Rejected(
            f"the graph reads asset file(s) {missing[:5]} that are not in assets/; upload the "
            "whole SavedModel directory, assets included.",
            code="savedmodel.missing_asset",
        )
    signature = _serving_signature(meta)
    notes = _check_variables(root)
    notes += check_graph(root, meta, settings)
    inputs = _tensors(signature.inputs)
    outputs = _tensors(signature.outputs)
    return SavedModelScan(inputs, outputs, tuple(notes))


def referenced_assets(meta: Any) -> set[str]:
    """Asset files the graph reads (paths relative to assets/), e.g. vocabularies."""
    return {a.filename for a in meta.asset_file_def if a.filename}


def graph_too_large(size: int) -> str:
    return (
        f"saved_model.pb is {size:,} bytes; the limit for the graph file is "
        f"{MAX_GRAPH_BYTES:,} (an EfficientNetB7 export's is 7.5 MB). Keep weights in "
        f"variables/, not in graph constants. {_FIX}"
    )


def parse_asset_names(data: bytes) -> frozenset[str] | None:
    """The asset file names `saved_model.pb` bytes name, parsing nothing else (the graph stays
    unknown bytes: no amplification); None when they do not parse or there is not one
    MetaGraph (validation rejects them with the specific reason)."""
    if len(data) > MAX_GRAPH_BYTES:
        return None
    try:
        model = parse_limited("SavedModelAssets", data, MAX_GRAPH_PARSE_BYTES)
    except Exception:  # noqa: BLE001 protobuf raises DecodeError and others; ProtoLimit
        return None
    if len(model.meta_graphs) != 1:
        return None
    return frozenset(referenced_assets(model.meta_graphs[0]))


def _parse(pb: Path) -> Any:
    if pb.is_symlink() or not pb.is_file():
        raise Rejected(
            f"saved_model.pb is missing from the directory. {_FIX}", code="savedmodel.missing_pb"
        )
    size = pb.stat().st_size
    if size > MAX_GRAPH_BYTES:
        raise Rejected(graph_too_large(size), code="savedmodel.graph_too_large")
    try:
        model = parse_limited("SavedModel", pb.read_bytes(), MAX_GRAPH_PARSE_BYTES)
    except ProtoLimit as exc:
        raise Rejected(
            f"saved_model.pb is too large to inspect: {exc} (the limit is "
            f"{MAX_GRAPH_PARSE_BYTES // 1024**2} MiB; an EfficientNetB7 export's graph takes "
            f"24 MB). Keep weights in variables/, not in graph constants. {_FIX}",
            code="savedmodel.graph_too_large",
        ) from None
    except Exception as exc:  # noqa: BLE001 protobuf raises DecodeError and others
        raise Rejected(
            f"saved_model.pb is not a valid SavedModel protobuf ({str(exc)[:120]}); the file is "
            f"corrupt or truncated. Upload it again. {_FIX}",
            code="savedmodel.bad_proto",
        ) from None
    if len(model.meta_graphs) != 1:
        raise Rejected(
            f"saved_model.pb has {len(model.meta_graphs)} MetaGraphs; expected exactly one "
            f"(the 'serve' graph written by tf.saved_model.save). {_FIX}",
            code="savedmodel.bad_proto",
        )
    return model.meta_graphs[0]


def _serving_signature(meta: Any) -> Any:
    signatures = {entry.key: entry.value for entry in meta.signature_def}
    if SIGNATURE not in signatures:
        found = sorted(k for k in signatures if not k.startswith("__")) or "none"
        raise Rejected(
            f"The SavedModel has no '{SIGNATURE}' signature (found: {found}); Vertex AI serves "
            f"that signature. {_FIX}",
            code="savedmodel.missing_serving_default",
        )
    signature = signatures[SIGNATURE]
    if not signature.inputs or not signature.outputs:
        raise Rejected(
            f"The '{SIGNATURE}' signature has no inputs or no outputs. {_FIX}",
            code="savedmodel.missing_serving_default",
        )
    return signature


def _check_variables(root: Path) -> list[str]:
    var_dir = root / "variables"
    index = var_dir / "variables.index"
    shards = {p.name for p in var_dir.glob("variables.data-*")} if var_dir.is_dir() else set()
    if not index.is_file():
        if shards:
            raise Rejected(
                "variables/variables.index is missing but shard files exist; the upload is "
                "incomplete. Upload the whole SavedModel directory.",
                code="savedmodel.missing_index",
            )
        return ["no variables"]
    try:
        with open_bundle_index(index) as (num_shards, entries):
            count = _check_shards(var_dir, shards, num_shards, entries)
    except (BundleError, OSError, UnicodeDecodeError) as exc:
        raise Rejected(
            f"variables/variables.index is not a readable checkpoint index ({exc}); the file "
            "is corrupt or truncated. Upload the SavedModel again.",
            code=getattr(exc, "code", "savedmodel.bad_index"),
        ) from None
    return [f"variables: {count} tensors in {num_shards} shard(s)"]


def _check_shards(
    var_dir: Path, shards: set[str], num_shards: int, entries: Iterator[Entry]
) -> int:
    if not 0 < num_shards <= 99999:  # shard names have five digits: -of-NNNNN
        raise BundleError(f"the header says {num_shards} shards")
    expected = {f"variables.data-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)}
    missing = sorted(expected - shards)
    if missing:
        raise Rejected(
            f"The variables index expects {num_shards} shard file(s) but {', '.join(missing)} "
            f"is/are missing (found {sorted(shards) or 'none'}). Upload every "
            "variables.data-*-of-* file of the SavedModel.",
            code="savedmodel.missing_shard",
        )
    extra = sorted(shards - expected)
    if extra:
        raise Rejected(
            f"variables/ has shard files {extra} that the index (num_shards={num_shards}) "
            "does not name; files from two different saves are mixed. Upload one clean export.",
            code="savedmodel.missing_shard",
        )
    sizes = {i: (var_dir / f"variables.data-{i:05d}-of-{num_shards:05d}").stat().st_size
             for i in range(num_shards)}  # fmt: skip
    count = 0
    for key, shard, offset, size in entries:
        count += 1
        if shard not in sizes or offset + size > sizes[shard]:
            raise Rejected(
                f"Variable {key!r} lies beyond the end of shard {shard} ({offset}+{size} > "
                f"{sizes.get(shard)} bytes); the shard is truncated. Upload it again.",
                code="savedmodel.truncated_shard",
            )
    return count


def _tensors(entries: Any) -> tuple[TensorInfo, ...]:
    out = []
    for entry in sorted(entries, key=lambda e: e.key):
        info = entry.value
        if info.tensor_shape.unknown_rank:
            shape: tuple[int | None, ...] = ()
            dtype = DTYPES.get(info.dtype, f"dtype{info.dtype}") + "(unknown rank)"
        else:
            shape = tuple(None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim)
            dtype = DTYPES.get(info.dtype, f"dtype{info.dtype}")
        if info.coo_sparse or info.composite_tensor:
            dtype += "(composite)"
        out.append(TensorInfo(name=entry.key, dtype=dtype, shape=shape))
    return tuple(out)
