"""`status`: what became of one upload, from its records under `{STATE_PREFIX}uploads/`.

A `.keras` upload has one record per object generation (`…/model.keras/g<generation>.json`); a
SavedModel directory one per set of member generations (`…/dir/members-<key>.json`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..gcs.objects import ObjectStore
from ..gcs.records import FINAL_STATES
from ..settings import Settings


@dataclass(frozen=True)
class UploadStatus:
    uri: str  # the upload as resolved: a .keras object or a SavedModel directory (ends in /)
    records: list[dict[str, Any]]  # newest upload generation first; each has `record_uri`
    live_generation: int | None  # the object's current generation (.keras only)

    @property
    def live_unprocessed(self) -> bool:
        """The live .keras generation has no record yet (no event seen, or still queued)."""
        if self.live_generation is None:
            return False
        return all(_generation(r) != self.live_generation for r in self.records)


def upload_status(store: ObjectStore, settings: Settings, bucket: str, path: str) -> UploadStatus:
    """Records for gs://bucket/path; a path without records is retried as a directory."""
    candidates = [path] if path.endswith("/") else [path, path + "/"]
    for candidate in candidates:
        records = _records(store, settings, bucket, candidate)
        if records:
            break
    else:
        candidate = candidates[0]
    live = None
    if not candidate.endswith("/"):
        info = store.get_object(bucket, candidate)
        live = info.generation if info else None
    return UploadStatus(f"gs://{bucket}/{candidate}", records, live)


def summary_row(record: dict[str, Any]) -> dict[str, Any]:
    reason = record.get("reason")
    detail = ""
    if isinstance(reason, dict):
        detail = f"{reason.get('code', '')}: {reason.get('message', '')}"
    elif record.get("state") == "retrying":
        detail = str(record.get("last_error", ""))
    elif record.get("state") == "claimed":
        detail = f"in progress by {record.get('claimed_by')} until {record.get('lease_expires')}"
    if record.get("state") == "handed_off":  # the job execution that holds it, and until when
        handoff = record.get("handoff") or {}
        detail += f" — job execution {handoff.get('execution')} until {handoff.get('expires')}"
    return {
        "generation": _generation(record),
        "state": record.get("state"),
        "final": record.get("state") in FINAL_STATES,
        "version": record.get("version_name"),
        "artifact_uri": record.get("artifact_uri"),
        "digest": record.get("digest"),
        "detail": detail,
        "attempts": record.get("attempts"),
        "updated": record.get("updated"),
        "record_uri": record.get("record_uri"),
        "deployment": deployment_summary(record.get("deployment")),
    }


def deployment_summary(note: Any) -> str | None:
    """`canary started on E (10%)`, `replaced`, `promoted`, … from a record's `deployment`."""
    if not isinstance(note, dict) or not note.get("state"):
        return None
    endpoint = str(note.get("endpoint", "")).rsplit("/", 1)[-1]
    text = f"{note.get('role') or 'deployment'} {note['state']}"
    if endpoint:
        text += f" on {endpoint}"
    if note.get("state") == "started" and note.get("traffic_split"):
        text += f" ({note['traffic_split'].get('new')}%)"
    if note.get("reason"):
        text += f": {note['reason']}"
    if note.get("finish_with"):
        text += f" (finish: `{note['finish_with']}`)"
    return text


def _records(
    store: ObjectStore, settings: Settings, bucket: str, path: str
) -> list[dict[str, Any]]:
    is_dir = path.endswith("/")
    prefix = f"{settings.state_prefix}uploads/{path.rstrip('/')}/"
    found = []
    for obj in store.list_objects(bucket, prefix):
        leaf = obj.name[len(prefix) :]
        if "/" in leaf or not leaf.endswith(".json"):
            continue  # a deeper upload's record (e.g. a .keras file inside this directory)
        if leaf.startswith("members-") != is_dir:
            continue
        current = store.read_bytes(bucket, obj.name)
        if current is None:
            continue
        try:
            record = json.loads(current[0])
        except json.JSONDecodeError:
            record = {"state": "corrupt"}
        if isinstance(record, dict):
            found.append({**record, "record_uri": obj.uri})
    return sorted(found, key=lambda r: (_generation(r) or 0, str(r.get("updated"))), reverse=True)


def _generation(record: dict[str, Any]) -> int | None:
    members = record.get("members")
    if isinstance(members, dict) and members:
        try:
            return max(int(g) for g in members.values())
        except (TypeError, ValueError):
            return None
    return None
