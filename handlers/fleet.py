"""Fleet backfill: one task of a Cloud Run job execution registers its share of a bucket prefix.

`registrar backfill gs://B/P --job-tasks N` starts JOB_NAME with N tasks, each running
`python -m handlers.job backfill gs://B/P --uploads-per-minute K`. Each task:
* lists the prefix and keeps the uploads whose *model* hashes to its CLOUD_RUN_TASK_INDEX
  (sha256 of the display name, mod CLOUD_RUN_TASK_COUNT): every upload has exactly one task
  however the listings of different tasks interleave with new uploads, and one model's uploads
  stay in one task, oldest generation first (version numbers follow upload order);
* paces its UploadModel calls to K per minute, evenly spaced, K = the launcher's budget / N, so
  all tasks together stay under the budget: under Vertex's quota of 60 per minute per region
  with the default budget of 50 (the function keeps the rest), or a raised quota's, up to
  `limits.MAX_UPLOADS_PER_MINUTE` (each task accepts any K up to that);
* handles each upload through the function's own pipeline (`Pipeline.handle_object`): same
  checks, sandbox, records; an upload already registered is a duplicate, so re-running (or the
  platform retrying a task) registers nothing twice;
* writes its progress and final summary to `{STATE_PREFIX}jobs/{execution}/task-NNNN.json`,
  which `registrar job EXECUTION` reads.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .errors import PermanentError, TransientError
from .gcs.documents import read_document, write_document
from .gcs.objects import ObjectStore, PreconditionFailed
from .gcs.records import now_iso
from .intake import layout
from .intake.events import ObjectEvent
from .intake.listing import uploads_in
from .pipeline import Pipeline
from .registry.vertex import make_registry
from .settings import Settings

CATEGORIES = ("registered", "already", "rejected", "skipped", "failed")


def category(outcome: str, state: str | None) -> str:
    """A pipeline outcome as a backfill count: a duplicate counts by what the record says (a
    live hand-off elsewhere is `skipped`, not `already`)."""
    if outcome == "duplicate":
        return {"registered": "already", "rejected": "rejected"}.get(state or "", "skipped")
    return outcome if outcome in ("registered", "rejected") else "skipped"


def share(key: str, count: int) -> int:
    """The task (0..count-1) that owns `key`: stable across processes and listings."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def summary_name(settings: Settings, execution: str, index: int) -> str:
    return f"{settings.state_prefix}jobs/{execution}/task-{index:04d}.json"


# Vertex counts a call when it arrives, not when the task sent it: with calls exactly 60/K s
# apart, a call delayed a few ms more than the one K calls later puts K+1 in Vertex's minute (and
# when every task runs at its share, the fleet over the budget: a 429). So K calls span this much
# more than a minute: arrival delays may differ by up to that much.
SLACK_SECONDS = 1.0


class Spacing:
    """At most `per_minute` calls in any minute from this task, evenly spaced (one call at a
    time), `(60 + SLACK_SECONDS) / per_minute` apart."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = (60.0 + SLACK_SECONDS) / per_minute
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._lock = threading.Lock()
        self.calls = 0

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval
            self.calls += 1


def paced_registry(settings: Settings, spacing: Spacing) -> Callable[[], Any]:
    def make() -> Any:
        registry = make_registry(settings)
        upload = registry.upload_model

        def paced(*args: Any, **kwargs: Any) -> Any:
            spacing.wait()
            return upload(*args, **kwargs)

        registry.upload_model = paced  # type: ignore[method-assign]
        return registry

    return make


def my_events(
    store: ObjectStore, settings: Settings, bucket: str, prefix: str, index: int, count: int
) -> list[ObjectEvent]:
    """This task's uploads under gs://bucket/prefix, oldest generation first per model."""
    listed = uploads_in(store.list_objects(bucket, prefix), settings)
    mine: list[tuple[str, ObjectEvent]] = []
    for obj in listed.announcing:
        source = obj.name if obj.name.endswith(".keras") else obj.name.rsplit("/", 1)[0] + "/"
        try:
            key = layout.display_name_for(source, settings, obj.metadata).display_name
        except PermanentError:
            key = source  # rejected by name alone: still one task's
        if share(key, count) == index:
            mine.append((key, ObjectEvent.for_object(obj, event_id=f"fleet:{obj.generation}")))
    mine.sort(key=lambda pair: (pair[0], pair[1].generation, pair[1].name))
    return [event for _, event in mine]


class Progress:
    """The task's summary document, rewritten after every upload."""

    def __init__(self, store: ObjectStore, bucket: str, name: str, base: dict[str, Any]) -> None:
        self._store, self._bucket, self._name = store, bucket, name
        self.doc = {**base, "state": "running", "counts": dict.fromkeys(CATEGORIES, 0)}
        self.failures: list[dict[str, str]] = []

    def write(self) -> None:
        self.doc["updated"] = now_iso()
        self.doc["failures"] = self.failures[-20:]
        current = read_document(self._store, self._bucket, self._name, corrupt={})
        try:
            write_document(
                self._store, self._bucket, self._name, self.doc,
                if_generation_match=current[1] if current else 0,
            )  # fmt: skip
        except (PreconditionFailed, TransientError):
            pass  # progress only: the next write (or the final one) carries it

    def count(self, category: str, uri: str, message: str) -> None:
        self.doc["counts"][category] += 1
        self.doc["done"] = sum(self.doc["counts"].values())
        if category in ("failed", "rejected"):
            self.failures.append({"uri": uri, "result": category, "message": message[:500]})
        self.write()


def run(
    settings: Settings,
    *,
    bucket: str,
    prefix: str,
    uploads_per_minute: int,
    task: dict[str, str],
    store: ObjectStore | None = None,
) -> int:
    """This task's share; returns the exit status (1: something failed transiently, so the
    platform retries the task — what was registered is a duplicate then)."""
    settings = settings.for_backfill(canary=False)  # fleet tasks register, they never deploy
    store = store or ObjectStore(settings)
    index, count = int(task["task_index"]), int(task["task_count"])
    spacing = Spacing(uploads_per_minute)
    # the task's claims name it, so its next attempt (Cloud Run never runs two at once) takes
    # over what a dead attempt held instead of waiting out the lease (gcs/records.py)
    holder = f"{task['execution'] or 'local'}/{index}"
    pipeline = Pipeline(
        settings, store=store, registry_factory=paced_registry(settings, spacing), holder=holder
    )
    events = my_events(store, settings, bucket, prefix, index, count)
    progress = Progress(
        store,
        bucket,
        summary_name(settings, task["execution"] or "local", index),
        {
            "execution": task["execution"],
            "task_index": index,
            "task_count": count,
            "attempt": int(task["attempt"]),
            "source": f"gs://{bucket}/{prefix}",
            "uploads_per_minute": uploads_per_minute,
            "total": len(events),
            "done": 0,
        },
    )
    progress.write()
    outcomes: Counter[str] = Counter()
    for event in events:
        try:
            outcome = pipeline.handle_object(event)
        except TransientError as exc:
            progress.count("failed", event.uri, str(exc))
            outcomes["failed"] += 1
            continue
        counted = category(outcome.outcome, outcome.fields.get("state"))
        outcomes[counted] += 1
        progress.count(counted, str(outcome.fields.get("source_uri", event.uri)), outcome.message)
    progress.doc.update(state="done", upload_calls=spacing.calls)
    progress.write()
    return 1 if outcomes["failed"] else 0
