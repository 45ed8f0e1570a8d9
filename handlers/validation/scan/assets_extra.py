"""`assets.extra/` of a SavedModel: only what TF Serving defines there, checked without TF.

Runs in the function process. TF Serving reads one file from `assets.extra/`:
`tf_serving_warmup_requests`, a TFRecord file of `PredictionLog` protos it replays at load time
(at most 1000 records). A replayed request runs inside the serving process, so each record must
be a Predict/Classify/Regress/MultiInference request for one of the model's own signatures;
`SessionRunLog` records (arbitrary fetches and targets, e.g. the saver's ops with a chosen file
name) are refused. The file is streamed record by record: TFRecord framing (length, masked
CRC-32C of the length and of the data) under a per-record size cap and a record-count cap,
then a bounded protobuf parse.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import google_crc32c

from ...errors import Rejected
from .proto import parse_limited

WARMUP = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's own cap on warmup records
MAX_RECORD_BYTES = 16 * 1024**2
MAX_RECORD_PARSE_BYTES = 64 * 1024**2  # parse budget of one record (scan.proto.parse_limited)
_INIT_SIGNATURE = "__saved_model_init_op"


def check_assets_extra(root: Path, meta: Any) -> list[str]:
    """Raise `Rejected(savedmodel.bad_assets_extra)` unless `root/assets.extra` is absent or
    holds only a valid warmup file; notes for the report."""
    extra = root / "assets.extra"
    if not extra.exists():
        return []
    if extra.is_symlink() or not extra.is_dir():
        _fail("assets.extra is not a directory")
    others = sorted(p.name for p in extra.iterdir() if p.name != WARMUP)
    if others:
        _fail(f"it holds {others[:5]}; TF Serving defines only {WARMUP!r} there")
    warmup = extra / WARMUP
    if not warmup.exists():
        return []
    if warmup.is_symlink() or not warmup.is_file():
        _fail(f"{WARMUP} is not a regular file")
    signatures = {e.key: e.value for e in meta.signature_def if e.key != _INIT_SIGNATURE}
    with warmup.open("rb") as handle:
        count = 0
        for record in _records(handle):
            count += 1
            if count > MAX_RECORDS:
                _fail(f"{WARMUP} has more than {MAX_RECORDS} records (TF Serving's limit)")
            _check_log(record, count, signatures)
    return [f"warmup: {count} request(s)"]


def _records(handle: BinaryIO) -> Iterator[bytes]:
    """The data of each TFRecord: uint64 length, masked crc32c(length), data, masked crc(data)."""
    number = 0
    while True:
        header = handle.read(12)
        if not header:
            return
        number += 1
        if len(header) < 12:
            _fail(f"{WARMUP} record {number} is truncated (no full header)")
        (length,) = struct.unpack("<Q", header[:8])
        if _masked_crc(header[:8]) != struct.unpack("<I", header[8:])[0]:
            _fail(f"{WARMUP} record {number}: the length's CRC does not match (not a TFRecord)")
        if length > MAX_RECORD_BYTES:
            _fail(f"{WARMUP} record {number} is {length} bytes; the limit is {MAX_RECORD_BYTES}")
        data = handle.read(length)
        footer = handle.read(4)
        if len(data) < length or len(footer) < 4:
            _fail(f"{WARMUP} record {number} is truncated")
        if _masked_crc(data) != struct.unpack("<I", footer)[0]:
            _fail(f"{WARMUP} record {number}: the data's CRC does not match")
        yield data


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _check_log(data: bytes, number: int, signatures: dict[str, Any]) -> None:
    try:
        log = parse_limited("PredictionLog", data, MAX_RECORD_PARSE_BYTES)
    except Exception as exc:  # noqa: BLE001 ProtoLimit, DecodeError and others
        _fail(f"{WARMUP} record {number} is not a PredictionLog ({str(exc)[:100]})")
    kinds = [k for k in ("predict_log", "classify_log", "regress_log", "multi_inference_log",
                         "session_run_log") if log.HasField(k)]  # fmt: skip
    if len(kinds) != 1:
        _fail(f"{WARMUP} record {number} is not a PredictionLog with one request")
    kind = kinds[0]
    if kind == "session_run_log":
        _fail(f"{WARMUP} record {number} is a SessionRun request (arbitrary graph fetches)")
    if kind == "predict_log":
        request = log.predict_log.request
        signature = _signature(request.model_spec, signatures, number)
        inputs = {e.key for e in signature.inputs}
        outputs = {e.key for e in signature.outputs}
        unknown = sorted({e.key for e in request.inputs} - inputs)
        if unknown or not request.inputs:
            _fail(f"{WARMUP} record {number} feeds {unknown or 'no inputs'}; the signature "
                  f"takes {sorted(inputs)}")  # fmt: skip
        if set(request.output_filter) - outputs:
            _fail(f"{WARMUP} record {number} asks for outputs the signature does not have")
    elif kind == "multi_inference_log":
        tasks = log.multi_inference_log.request.tasks
        if not tasks:
            _fail(f"{WARMUP} record {number} is a MultiInference request without tasks")
        for task in tasks:
            _signature(task.model_spec, signatures, number)
    else:
        _signature(getattr(log, kind).request.model_spec, signatures, number)


def _signature(spec: Any, signatures: dict[str, Any], number: int) -> Any:
    name = spec.signature_name or "serving_default"
    if name not in signatures:
        _fail(f"{WARMUP} record {number} targets signature {name!r}, which the model lacks")
    return signatures[name]


def _fail(what: str) -> NoReturn:
    raise Rejected(
        f"assets.extra/ is not what TF Serving expects: {what}. Only "
        f"assets.extra/{WARMUP} (a TFRecord file of PredictionLog warmup requests for the "
        "model's signatures) is accepted; remove anything else.",
        code="savedmodel.bad_assets_extra",
    )
