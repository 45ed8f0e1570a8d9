"""Hand one claimed upload to a Cloud Run job execution, so it is neither lost nor done twice.

Order (each step leaves a record another worker reads correctly):
1. our claim becomes `handed_off` with a fresh token and an expiry (HANDOFF_LEASE_SECONDS):
   from now on only a job task given that token takes the upload over (gcs/records.py);
2. one execution starts with the token and the upload's identity as overrides;
3. the record gets the execution's name (what `registrar status` shows and `registrar job`
   follows). If the start fails, the record goes back to `retrying` and the event is redelivered.
Writing `handed_off` before starting means a fast task never finds the function's own claim; an
execution that is lost (never starts, or every attempt dies) leaves a hand-off that expires, and
the next event or `registrar backfill` for the upload starts it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from ..errors import TransientError
from ..gcs.records import Held, Records, now_iso
from ..settings import Settings
from . import jobs
from .policy import Why


def hand_off(
    held: Held,
    records: Records,
    settings: Settings,
    *,
    args: Sequence[str],
    why: Why,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Returns the record as it stands after the hand-off (state `handed_off`)."""
    token = uuid.uuid4().hex
    expires = time.time() + settings.handoff_lease_seconds
    handoff = {"token": token, "expires_epoch": expires, "expires": now_iso(expires)}
    held.finish(
        {
            "state": "handed_off",
            "reason": {"code": why.code, "message": why.message},
            "handoff": {**handoff, "job": jobs.job_path(settings)},
            "timings": timings,
        }
    )
    bucket, name = held.claim.bucket, held.claim.name
    try:
        execution = jobs.start(settings, [*args, "--token", token])
    except Exception as exc:
        records.update(bucket, name, _give_back(token, f"{type(exc).__name__}: {exc}"), "retrying")
        if isinstance(exc, TransientError):
            raise
        raise TransientError(f"could not start the job: {type(exc).__name__}: {exc}") from exc
    record = records.update(bucket, name, _named(token, execution), "execution started")
    return record or {}


def _named(token: str, execution: str) -> Any:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        handoff = record.get("handoff") or {}
        if handoff.get("token") != token:  # handed off again since: not ours to name
            return record
        return {**record, "handoff": {**handoff, "execution": execution}}

    return change


def _give_back(token: str, error: str) -> Any:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        handoff = record.get("handoff") or {}
        if record.get("state") != "handed_off" or handoff.get("token") != token:
            return record
        return {**record, "state": "retrying", "last_error": error[:2000], "handoff": {}}

    return change
