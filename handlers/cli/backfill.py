"""Register the models already in a bucket: the same pipeline as the function, fed from a listing.

Each upload becomes the `ObjectEvent` its finalize event would have been (for a SavedModel, the
event of its `saved_model.pb`), handled by `Pipeline.handle_object`: same validation, same records.
Re-running is safe: uploads with a final record come back as duplicates and register nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from handlers.errors import PermanentError, Superseded, TransientError, Waiting
from handlers.gcs.objects import ObjectInfo, ObjectStore
from handlers.gcs.records import FINAL_STATES, record_name
from handlers.intake import layout
from handlers.intake import uploads as artifacts
from handlers.intake.events import ObjectEvent
from handlers.pipeline import Outcome, Pipeline
from handlers.settings import Settings

# Result categories, in the order the summary lists them.
REGISTERED = "registered"
WOULD_REGISTER = "would register"
ALREADY = "already registered"
REJECTED = "rejected"
SKIPPED = "skipped"
FAILED = "failed"
CATEGORIES = (REGISTERED, WOULD_REGISTER, ALREADY, REJECTED, SKIPPED, FAILED)
_SAVED_MODEL_ROOTS = ("saved_model.pb", "saved_model.pbtxt")


@dataclass(frozen=True)
class Result:
    uri: str  # the upload: a .keras object or a SavedModel directory
    category: str
    message: str
    outcome: str = ""  # the pipeline's outcome word, when the pipeline ran
    reason: str = ""  # rejection / skip code
    display_name: str = ""
    model: str = ""
    version_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    events: list[ObjectEvent]  # one per upload, in listing order
    skipped: list[Result]  # objects under the prefix that are not (complete) model uploads


def listing_prefix(prefix: str, settings: Settings) -> str:
    """The part of the bucket to list: `prefix`, narrowed to MODEL_PREFIX if it is wider."""
    if prefix.startswith(settings.model_prefix):
        return prefix
    if settings.model_prefix.startswith(prefix):
        return settings.model_prefix
    raise ValueError(
        f"{prefix!r} is outside MODEL_PREFIX={settings.model_prefix!r}: the function would ignore "
        "uploads there, so backfill does too. Give a path under MODEL_PREFIX, or set MODEL_PREFIX "
        "to what the deployed function watches."
    )


def discover(store: ObjectStore, settings: Settings, bucket: str, prefix: str) -> Plan:
    """Every model upload under gs://bucket/prefix, as the events that would announce it."""
    objects = store.list_objects(bucket, listing_prefix(prefix, settings))
    events: list[ObjectEvent] = []
    roots: dict[str, ObjectInfo] = {}  # SavedModel dir -> its saved_model.pb(txt) object
    members: dict[str, tuple[str, ...]] = {}  # member name -> candidate dirs
    skipped: list[Result] = []
    for obj in objects:
        artifact = layout.classify(obj.name, settings)
        if isinstance(artifact, layout.KerasFile):
            events.append(_event(obj))
        elif isinstance(artifact, layout.SavedModelMember):
            base = posixpath.basename(obj.name)
            directory = obj.name[: -len(base)]
            if base in _SAVED_MODEL_ROOTS and (
                directory not in roots or base == _SAVED_MODEL_ROOTS[0]
            ):
                roots[directory] = obj
            elif base not in _SAVED_MODEL_ROOTS:
                members[obj.name] = artifact.candidate_dirs
        elif not artifact.reason.startswith(("folder", "temporary")):
            skipped.append(Result(obj.uri, SKIPPED, artifact.reason, reason="not_a_model"))
    events.extend(_event(obj) for obj in roots.values())
    orphans = sorted(
        {dirs[-1] for dirs in members.values() if dirs and not any(d in roots for d in dirs)}
    )
    skipped.extend(
        Result(
            f"gs://{bucket}/{directory}",
            SKIPPED,
            "SavedModel files without saved_model.pb: an incomplete upload; upload saved_model.pb "
            "to register it",
            reason="incomplete_saved_model",
        )
        for directory in orphans
    )
    return Plan(events, skipped)


def run(
    pipeline: Pipeline,
    events: Iterable[ObjectEvent],
    *,
    concurrency: int = 4,
    dry_run: bool = False,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Handle every event (or, with dry_run, say what handling would do).

    Uploads of one model go one after another, oldest generation first, so version numbers
    follow upload order and `default` ends on the newest (as if the events had come in order);
    different models run `concurrency` at a time.
    """
    step = (lambda e: preview(pipeline, e)) if dry_run else (lambda e: handle(pipeline, e))

    def one_model(batch: list[ObjectEvent]) -> list[Result]:
        results = []
        for event in batch:
            results.append(step(event))
            if on_result is not None:
                on_result(results[-1])
        return results

    batches = _by_model(events, pipeline.settings)
    if concurrency <= 1 or len(batches) <= 1:
        return [r for batch in batches for r in one_model(batch)]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="backfill") as pool:
        return [r for results in pool.map(one_model, batches) for r in results]


def _by_model(events: Iterable[ObjectEvent], settings: Settings) -> list[list[ObjectEvent]]:
    batches: dict[str, list[ObjectEvent]] = {}
    for event in events:
        source = _upload_uri(event).split("/", 3)[3]
        try:
            key = layout.display_name_for(source, settings).display_name
        except PermanentError:
            key = f"\0{source}"  # rejected by name alone: its own batch
        batches.setdefault(key, []).append(event)
    return [sorted(b, key=lambda e: (e.generation, e.name)) for b in batches.values()]


def handle(pipeline: Pipeline, event: ObjectEvent) -> Result:
    try:
        outcome = pipeline.handle_object(event)
    except TransientError as exc:
        return Result(_upload_uri(event), FAILED, str(exc), outcome="failed", reason=exc.code)
    except Exception as exc:  # noqa: BLE001 - one odd upload must not end a backfill of thousands
        message = f"unexpected {type(exc).__name__}: {exc}"
        return Result(_upload_uri(event), FAILED, message, outcome="failed", reason="unexpected")
    return from_outcome(event, outcome)


def from_outcome(event: ObjectEvent, outcome: Outcome) -> Result:
    fields = outcome.fields
    uri = str(fields.get("source_uri") or _upload_uri(event))
    common = {
        "outcome": outcome.outcome,
        "display_name": str(fields.get("display_name", "")),
        "model": str(fields.get("model", "")),
        "version_id": str(fields.get("version_id", "")),
    }
    if outcome.outcome == "registered":
        reused = bool(fields.get("reused_existing_version"))
        message = "an existing version carried this upload's key" if reused else outcome.message
        return Result(uri, ALREADY if reused else REGISTERED, message, **common)
    if outcome.outcome == "duplicate":
        return _from_record(uri, fields, outcome.message, common)
    if outcome.outcome == "rejected":
        return Result(
            uri, REJECTED, outcome.message, reason=str(fields.get("reason", "")), **common
        )
    return Result(uri, SKIPPED, outcome.message, reason=outcome.outcome, **common)


def preview(pipeline: Pipeline, event: ObjectEvent) -> Result:
    """What `handle` would do, from reads only: nothing is claimed, validated or registered."""
    settings, store = pipeline.settings, pipeline.store
    artifact = layout.classify(event.name, settings)
    try:
        if isinstance(artifact, layout.KerasFile):
            upload = artifacts.resolve_keras(event, artifact, store, settings)
        elif isinstance(artifact, layout.SavedModelMember):
            upload = artifacts.resolve_saved_model(event, artifact, store, settings)
        else:
            return Result(event.uri, SKIPPED, artifact.reason, reason="not_a_model")
    except (Waiting, Superseded) as exc:
        return Result(_upload_uri(event), SKIPPED, str(exc), reason=exc.code)
    except PermanentError as exc:
        return Result(_upload_uri(event), REJECTED, str(exc), reason=exc.code)
    name = record_name(settings.state_prefix, upload.source_path, upload.record_key)
    record = pipeline.records.read(upload.bucket, name)
    if record is not None and record.get("state") in FINAL_STATES:
        return _from_record(upload.uri, record, f"already {record['state']}", {})
    try:
        display = layout.display_name_for(upload.source_path, settings).display_name
    except PermanentError as exc:
        return Result(upload.uri, REJECTED, str(exc), reason=exc.code)
    return Result(
        upload.uri,
        WOULD_REGISTER,
        f"would validate and register as a version of {display!r}",
        display_name=display,
    )


def exit_status(results: Iterable[Result]) -> str:
    """`failed` beats `rejected` beats `ok`: a retry can fix the first, not the second."""
    categories = {r.category for r in results}
    if FAILED in categories:
        return FAILED
    return REJECTED if REJECTED in categories else "ok"


def _from_record(uri: str, record: dict[str, Any], message: str, common: dict[str, str]) -> Result:
    state = record.get("state")
    details = {
        "outcome": common.get("outcome", "duplicate"),
        "display_name": str(record.get("display_name", common.get("display_name", ""))),
        "model": str(record.get("model", common.get("model", ""))),
        "version_id": str(record.get("version_id", common.get("version_id", ""))),
    }
    if state == "registered":
        return Result(uri, ALREADY, f"registered earlier ({record.get('updated', '?')})", **details)
    if state == "rejected":
        reason = record.get("reason") or {}
        if isinstance(reason, dict):
            text = f"rejected earlier: {reason.get('message', message)}"
            return Result(uri, REJECTED, text, reason=str(reason.get("code", "")), **details)
        return Result(uri, REJECTED, f"rejected earlier ({reason})", reason=str(reason), **details)
    return Result(uri, SKIPPED, message, reason=str(state), **details)


def _event(obj: ObjectInfo) -> ObjectEvent:
    return ObjectEvent(
        bucket=obj.bucket,
        name=obj.name,
        generation=obj.generation,
        event_id=f"backfill-{obj.generation}",
        size=obj.size,
        crc32c=obj.crc32c,
        md5_hash=obj.md5_hash,
        metadata=dict(obj.metadata),
    )


def _upload_uri(event: ObjectEvent) -> str:
    base = posixpath.basename(event.name)
    if base in _SAVED_MODEL_ROOTS:
        return f"gs://{event.bucket}/{event.name[: -len(base)]}"
    return event.uri
