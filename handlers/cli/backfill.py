"""Register the models already in a bucket: the same pipeline as the function, fed from a listing.

Each upload becomes the `ObjectEvent` its finalize event would have been (for a SavedModel, the
event of its `saved_model.pb`), handled by `Pipeline.handle_object`: same validation, same records.
Re-running is safe: uploads with a final record come back as duplicates and register nothing.

Vertex allows 60 UploadModel operations per minute per region ("Job or LRO submission requests",
cloud.google.com/vertex-ai/docs/quotas) and answers 429 RESOURCE_EXHAUSTED over it. A backfill
therefore sends its UploadModel calls through one `Pacer` (at most N in any 60 s, across all its
threads), and an upload that still meets a 429 is handled again after a back-off instead of being
counted as failed; after `QUOTA_RETRIES` such re-runs it is reported `pending`.
"""

from __future__ import annotations

import functools
import math
import posixpath
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from ..errors import PermanentError, Superseded, TransientError, Waiting
from ..gcs.objects import ObjectInfo, ObjectStore
from ..gcs.records import FINAL_STATES, record_name
from ..intake import layout
from ..intake import uploads as artifacts
from ..intake.events import ObjectEvent
from ..intake.layout import SAVED_MODEL_GRAPHS
from ..intake.listing import uploads_in
from ..limits import MAX_UPLOADS_PER_MINUTE
from ..outcome import Outcome
from ..pipeline import Pipeline
from ..registry.vertex import make_registry
from ..settings import Settings

# Result categories, in the order the summary lists them.
REGISTERED = "registered"
WOULD_REGISTER = "would register"
ALREADY = "already registered"
REJECTED = "rejected"
SKIPPED = "skipped"
PENDING = "pending"  # still over Vertex's UploadModel quota after the retries: run again later
FAILED = "failed"
CATEGORIES = (REGISTERED, WOULD_REGISTER, ALREADY, REJECTED, SKIPPED, PENDING, FAILED)
_SAVED_MODEL_ROOTS = SAVED_MODEL_GRAPHS

# Pacing. Vertex: 60 LRO submissions per minute per project and region, shared with the deployed
# function's own uploads, so backfill defaults to fewer.
WINDOW_SECONDS = 60.0
DEFAULT_CONCURRENCY = 4  # different models handled at once (validation still takes turns)
DEFAULT_UPLOADS_PER_MINUTE = 50  # the most: handlers/limits.MAX_UPLOADS_PER_MINUTE
# An upload that met a 429 is handled again up to this many times, after jittered back-offs of
# 10-20, 20-40, 30-60, 30-60 s: at least 90 s in all, so the quota's minute has turned over.
QUOTA_RETRIES = 4
BACKOFF_INITIAL = 20.0
BACKOFF_MAX = 60.0
T = TypeVar("T")


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


@dataclass(frozen=True)
class Timer:
    """Where backfill reads the time and waits; tests swap `TIMER` for a fake that never sleeps."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


TIMER = Timer()


class Pacer:
    """At most `per_minute` submissions in any `WINDOW_SECONDS`, shared by every thread; after a
    429, no submission at all until the back-off has passed.

    A sliding window, like Vertex's (and the emulator's) quota accounting: a burst of up to
    `per_minute` goes at once, the next waits until the oldest of them is a minute old. Thread-safe.
    """

    def __init__(
        self, per_minute: int, *, timer: Timer | None = None, rng: random.Random | None = None
    ) -> None:
        if not 1 <= per_minute <= MAX_UPLOADS_PER_MINUTE:
            raise ValueError(f"per_minute must be 1..{MAX_UPLOADS_PER_MINUTE}, not {per_minute}")
        self.per_minute = per_minute
        self._timer = timer or TIMER
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()  # times of the latest `per_minute` submissions
        self._resume_at = -math.inf  # end of the latest back-off
        self.submissions = 0
        self.quota_retries = 0  # back-offs taken after a 429
        self.waited = 0.0  # seconds spent waiting, pacing and back-offs together

    def acquire(self) -> float:
        """Wait for the next free slot and take it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._timer.clock()
                slot = max(now, self._resume_at)
                if len(self._sent) >= self.per_minute:
                    slot = max(slot, self._sent[0] + WINDOW_SECONDS)
                if slot <= now:
                    self._sent.append(now)
                    if len(self._sent) > self.per_minute:
                        self._sent.popleft()
                    self.submissions += 1
                    self.waited += waited
                    return waited
            self._timer.sleep(slot - now)  # re-checked: a back-off may have begun meanwhile
            waited += slot - now

    def back_off(self, attempt: int) -> float:
        """After a 429 (the `attempt`-th for this upload, from 0): hold every submission for a
        jittered 10-20, 20-40, then 30-60 s, and wait that out; returns the seconds waited."""
        cap = min(BACKOFF_MAX, BACKOFF_INITIAL * 2**attempt)
        delay = self._rng.uniform(cap / 2, cap)
        with self._lock:
            now = self._timer.clock()
            self._resume_at = max(self._resume_at, now + delay)
            wait = self._resume_at - now
            self.quota_retries += 1
            self.waited += wait
        self._timer.sleep(wait)
        return wait

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "uploads_per_minute": self.per_minute,
                "upload_calls": self.submissions,
                "quota_retries": self.quota_retries,
                "waited_s": round(self.waited, 3),
            }


def pace(client: T, pacer: Pacer, *methods: str) -> T:
    """Make every call of `methods` on `client` wait for a slot of `pacer` first. The wrapper sits
    on the instance's primitives that submit a long-running operation, so the client's own
    retries are paced too (each is a submission)."""
    for name in methods:
        submit = getattr(client, name)

        def paced(*args: Any, _submit: Any = submit, **kwargs: Any) -> Any:
            pacer.acquire()
            return _submit(*args, **kwargs)

        setattr(client, name, functools.wraps(submit)(paced))
    return client


def pace_uploads(registry: T, pacer: Pacer) -> T:
    """UploadModel waits for a slot of `pacer`."""
    return pace(registry, pacer, "upload_model")


def pace_operations(endpoints: T, pacer: Pacer) -> T:
    """The endpoint LROs a canary submits (CreateEndpoint, DeployModel, UndeployModel) wait for a
    slot of the same `pacer` as the uploads: all share Vertex's 60 operations per minute."""
    return pace(endpoints, pacer, "create_endpoint", "deploy", "undeploy")


def paced_registry(settings: Settings, pacer: Pacer) -> Callable[[], Any]:
    """A `Pipeline` registry factory: the Vertex registry, its uploads paced by `pacer`."""

    def make() -> Any:
        return pace_uploads(make_registry(settings), pacer)

    return make


def over_quota(exc: BaseException) -> bool:
    """Whether an HTTP 429 (TooManyRequests / RESOURCE_EXHAUSTED) is among the failure's causes.

    The registry reports it as a TransientError `vertex_unavailable` like a 503; the SDK's
    exception is kept as its cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "code", None) == 429:  # api_core's TooManyRequests and subclasses
            return True
        current = current.__cause__ or current.__context__
    return False


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
    listed = uploads_in(store.list_objects(bucket, listing_prefix(prefix, settings)), settings)
    events = [_event(obj) for obj in listed.announcing]
    skipped = [
        Result(obj.uri, SKIPPED, reason, reason="not_a_model") for obj, reason in listed.not_models
    ]
    skipped.extend(
        Result(
            f"gs://{bucket}/{directory}",
            SKIPPED,
            "SavedModel files without saved_model.pb: an incomplete upload; upload saved_model.pb "
            "to register it",
            reason="incomplete_saved_model",
        )
        for directory in listed.incomplete
    )
    return Plan(events, skipped)


def run(
    pipeline: Pipeline,
    events: Iterable[ObjectEvent],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    on_result: Callable[[Result], None] | None = None,
    pacer: Pacer | None = None,
    quota_retries: int = QUOTA_RETRIES,
) -> list[Result]:
    """Handle every event (or, with dry_run, say what handling would do).

    Uploads of one model go one after another, oldest generation first, so version numbers
    follow upload order and `default` ends on the newest (as if the events had come in order);
    different models run `concurrency` at a time. With a `pacer` (the one the pipeline's registry
    was paced with, see `paced_registry`), an upload failing on a 429 is handled again after
    `pacer.back_off`, at most `quota_retries` times.
    """

    def step(event: ObjectEvent) -> Result:
        if dry_run:
            return preview(pipeline, event)
        return handle(pipeline, event, pacer=pacer, quota_retries=quota_retries)

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
            key = layout.display_name_for(source, settings, event.metadata).display_name
        except PermanentError:
            key = f"\0{source}"  # rejected by name alone: its own batch
        batches.setdefault(key, []).append(event)
    return [sorted(b, key=lambda e: (e.generation, e.name)) for b in batches.values()]


def handle(
    pipeline: Pipeline,
    event: ObjectEvent,
    *,
    pacer: Pacer | None = None,
    quota_retries: int = QUOTA_RETRIES,
) -> Result:
    """One upload through the pipeline. A 429 (with a `pacer`) is waited out and the upload
    handled again, `quota_retries` times at most, then reported `pending`; the claim is given
    back in between, so nothing is held while waiting."""
    attempt = 0
    while True:
        try:
            outcome = pipeline.handle_object(event)
        except TransientError as exc:
            if pacer is None or not over_quota(exc):
                return Result(
                    _upload_uri(event), FAILED, str(exc), outcome="failed", reason=exc.code
                )
            if attempt >= quota_retries:
                message = (
                    f"{exc}; still over Vertex AI's UploadModel quota after {attempt + 1} tries: "
                    "run the command again later"
                )
                return Result(
                    _upload_uri(event), PENDING, message, outcome="failed", reason="quota_exceeded"
                )
            pacer.back_off(attempt)
            attempt += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one odd upload must not end a backfill of thousands
            message = f"unexpected {type(exc).__name__}: {exc}"
            return Result(
                _upload_uri(event), FAILED, message, outcome="failed", reason="unexpected"
            )
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
            upload = artifacts.resolve_saved_model(
                event, artifact, store, settings, asset_names=pipeline.validator.asset_names
            )
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
        display = layout.display_name_for(
            upload.source_path, settings, upload.metadata
        ).display_name
    except PermanentError as exc:
        return Result(upload.uri, REJECTED, str(exc), reason=exc.code)
    return Result(
        upload.uri,
        WOULD_REGISTER,
        f"would validate and register as a version of {display!r}",
        display_name=display,
    )


def exit_status(results: Iterable[Result]) -> str:
    """`failed` (or `pending`) beats `rejected` beats `ok`: a retry can fix the first, not the
    second."""
    categories = {r.category for r in results}
    if FAILED in categories or PENDING in categories:
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
    return ObjectEvent.for_object(obj, event_id=f"backfill-{obj.generation}")


def _upload_uri(event: ObjectEvent) -> str:
    base = posixpath.basename(event.name)
    if base in _SAVED_MODEL_ROOTS:
        return f"gs://{event.bucket}/{event.name[: -len(base)]}"
    return event.uri
