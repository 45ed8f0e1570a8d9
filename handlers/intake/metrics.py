"""Metrics that travel with an upload: where they are, and what counts as valid.

Two places, both optional:
* custom metadata `metrics` on the model object itself (the `.keras`, or a SavedModel's
  `saved_model.pb`): pinned to that exact generation, so when present it is the one used;
* otherwise a `metrics.json` object in the upload's directory (beside the `.keras`, or at the
  SavedModel's root). It may be written before or after the model: a `metrics.json` already there
  when the model is registered is read then; one that arrives later has its own event and is
  attached to the registered version then (handlers/late/arrivals.py). It is never a member of
  the SavedModel (handlers/intake/uploads.py lists only model files). A `metrics.json` written more
  than `DIRECTORY_UPLOAD_WINDOW_SECONDS` *before* the model is left over from an earlier upload to
  that place and is not used. A `metrics.json` directly under `MODEL_PREFIX` is not used: it would
  name no single upload.

Valid metrics: a flat JSON object of finite numbers, names 1-128 printable characters, the object
at most 256 KiB (checked before parsing). Anything else is a `MetricsRejected` with its own code — a
rejection of the metrics, never of the model. `parse` guarantees it: whatever the bytes, it returns
metrics or raises `MetricsRejected` (an integer of thousands of digits, which `int()` refuses, is
read as the infinite number it is; any failure the rules did not foresee is `metrics.unreadable`).
"""

from __future__ import annotations

import json
import math
import posixpath
from typing import Any

from ..errors import Rejected, Superseded
from ..gcs.objects import ObjectInfo, ObjectStore
from ..model_metrics import Found, Metrics, MetricsProblem
from ..settings import Settings
from .layout import SAVED_MODEL_GRAPHS

METRICS_FILE = "metrics.json"
METADATA_KEY = "metrics"
MAX_METRICS_BYTES = 256 * 1024
MAX_NAME_CHARS = 128
_FIX = (
    'Write a flat JSON object of numbers, e.g. {"auc": 0.91, "loss": 0.23}, at most 256 KiB, '
    "and upload it again."
)


class MetricsRejected(Rejected):
    """The metrics are unusable; the model they came with is not affected."""

    code = "metrics.invalid"


def parse(data: bytes | str, where: str) -> dict[str, float]:
    """The metrics in `data`; raises `MetricsRejected` (with a specific code) for anything else,
    and never any other exception: bad metrics must not block (or loop) their model."""
    try:
        return _parse(data, where)
    except MetricsRejected:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 the promise above, for whatever the rules missed
        raise MetricsRejected(
            f"{where} could not be read as metrics ({type(exc).__name__}). " + _FIX,
            code="metrics.unreadable",
        ) from None


def _parse(data: bytes | str, where: str) -> dict[str, float]:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_METRICS_BYTES:
        raise MetricsRejected(
            f"{where} is {len(raw):,} bytes; metrics may be at most {MAX_METRICS_BYTES:,} bytes "
            "(256 KiB). " + _FIX,
            code="metrics.too_large",
        )
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            parse_constant=_no_constant,
            parse_int=_integer,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError:
        raise MetricsRejected(
            f"{where} is not UTF-8 text. " + _FIX, code="metrics.not_json"
        ) from None
    except _NotFinite as exc:
        raise MetricsRejected(
            f"{where}: {exc} is not a finite number. " + _FIX, code="metrics.not_finite"
        ) from None
    except _Duplicate as exc:
        raise MetricsRejected(
            f"{where}: metric {exc} appears twice. " + _FIX, code="metrics.duplicate_name"
        ) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MetricsRejected(
            f"{where} is not JSON ({exc}). " + _FIX, code="metrics.not_json"
        ) from None
    if not isinstance(value, dict):
        raise MetricsRejected(
            f"{where} holds a JSON {type(value).__name__}, not an object of metrics. " + _FIX,
            code="metrics.not_an_object",
        )
    if not value:
        raise MetricsRejected(
            f"{where} holds no metrics (an empty object). " + _FIX, code="metrics.empty"
        )
    metrics: dict[str, float] = {}
    for name, number in value.items():
        if (
            not name
            or len(name) > MAX_NAME_CHARS
            or any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in name)
        ):
            raise MetricsRejected(
                f"{where}: metric name {name[:140]!r} is not 1-{MAX_NAME_CHARS} printable "
                "characters. " + _FIX,
                code="metrics.bad_name",
            )
        if isinstance(number, (dict, list)):
            raise MetricsRejected(
                f"{where}: metric {name!r} is a nested {type(number).__name__}; metrics are one "
                "flat object of numbers. " + _FIX,
                code="metrics.not_flat",
            )
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise MetricsRejected(
                f"{where}: metric {name!r} is {json.dumps(number)[:60]}, not a number. " + _FIX,
                code="metrics.not_numeric",
            )
        try:
            as_float = float(number)
        except OverflowError:  # an integer too large for a double
            as_float = math.inf
        if not math.isfinite(as_float):
            raise MetricsRejected(
                f"{where}: metric {name!r} is not a finite number. " + _FIX,
                code="metrics.not_finite",
            )
        metrics[name] = as_float
    return metrics


def metrics_dir(source_path: str, kind: str) -> str:
    """The directory whose `metrics.json` belongs to an upload ("a/b/"); "" for none."""
    if kind == "saved_model":
        return source_path
    return posixpath.dirname(source_path) + "/" if "/" in source_path else ""


def for_upload(upload: Any, store: ObjectStore, settings: Settings) -> Found:
    """The metrics of a claimed `Upload` (handlers/intake/uploads.py): its own metadata, else the
    `metrics.json` beside it. Read after the upload is claimed: a `metrics.json` whose event finds
    no record yet is therefore always seen here (handlers/late/arrivals.py relies on it)."""
    metadata = upload.metadata.get(METADATA_KEY)
    if metadata is not None:
        model_object = _model_object(upload)
        where = f"custom metadata `{METADATA_KEY}` of {model_object.uri}"
        try:
            values = parse(metadata, where)
        except MetricsRejected as exc:
            return MetricsProblem(
                "rejected",
                exc.code,
                str(exc),
                model_object.uri,
                model_object.generation,
                "metadata",
            )
        return Metrics(values, model_object.uri, model_object.generation, "metadata")
    directory = metrics_dir(upload.source_path, upload.kind)
    if not directory or directory == settings.model_prefix:
        return None
    info = store.get_object(upload.bucket, directory + METRICS_FILE)
    if info is None:
        return None
    if is_stale(info.generation, upload.generation, settings):
        return MetricsProblem(
            "ignored",
            "metrics.stale",
            f"{info.uri} (generation {info.generation}) was written more than "
            f"DIRECTORY_UPLOAD_WINDOW_SECONDS={settings.directory_upload_window_seconds} before "
            "this model: it belongs to an earlier upload to this place. Upload the model's own "
            "metrics.json again.",
            info.uri,
            info.generation,
            "file",
        )
    try:
        return read_file(info, store)
    except MetricsRejected as exc:
        return MetricsProblem("rejected", exc.code, str(exc), info.uri, info.generation, "file")
    except Superseded:
        return None  # replaced while we read it: the newer generation's event attaches it


def read_file(info: ObjectInfo, store: ObjectStore) -> Metrics:
    """Read and parse exactly `info.generation` of a metrics.json (size checked first)."""
    if info.size > MAX_METRICS_BYTES:
        raise MetricsRejected(
            f"{info.uri} is {info.size:,} bytes; metrics may be at most {MAX_METRICS_BYTES:,} "
            "bytes (256 KiB). " + _FIX,
            code="metrics.too_large",
        )
    values = parse(store.read_object(info), info.uri)
    return Metrics(values, info.uri, info.generation, "file")


def is_stale(metrics_generation: int, model_generation: int, settings: Settings) -> bool:
    """Generations are microsecond timestamps: a metrics.json written more than the directory
    window before the model is left over from an earlier upload."""
    window = settings.directory_upload_window_seconds * 1_000_000
    return metrics_generation < model_generation - window


def _model_object(upload: Any) -> ObjectInfo:
    if upload.kind == "keras":
        return upload.members[0]
    for member in upload.members:
        if upload.relative(member) in SAVED_MODEL_GRAPHS:
            return member
    return upload.members[0]


class _NotFinite(ValueError):
    pass


class _Duplicate(ValueError):
    pass


def _integer(digits: str) -> int | float:
    """A JSON integer. Beyond what a double holds (309 digits) its value as a metric is infinite;
    `int()` would refuse thousands of digits with a plain ValueError (Python's int-string
    conversion limit), so it is never asked to."""
    return int(digits) if len(digits) <= _MAX_INT_DIGITS else float(digits)


_MAX_INT_DIGITS = 400


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Duplicate(repr(key))
        result[key] = value
    return result
