"""One human-readable JSON record per upload: the idempotency claim and the final outcome.

Record object: `{STATE_PREFIX}uploads/{source path}/{key}.json`, e.g.
`registrar-state/uploads/models/x/v3/model.keras/g1764151200000000.json` — so "what became of
gs://b/models/x/v3/model.keras?" is answered by reading one object.

Protocol (all writes carry an `ifGenerationMatch` precondition, so exactly one worker wins):
* claim: create-if-absent (`ifGenerationMatch=0`) with a lease and a fresh `claim_token`; a write
  whose reply was lost and whose retry then fails its precondition finds its own token on re-read
  and keeps the claim (instead of taking itself for another worker and stalling a lease); an
  existing record that is final
  means "already done"; an unexpired claim means a live worker (ask for redelivery); an expired
  claim or a released one (`retrying`) is taken over by replacing exactly that generation.
* finish: replace our claim's generation with the final record (`registered` / `rejected`).
* release: on a transient failure, mark `retrying` and expire the lease so redelivery proceeds.
* hand-off (handlers/handoff/): `handed_off` carries a token (handed to one Cloud Run job
  execution) and its own expiry (`handoff.expires_epoch`). Until then only a holder with that
  token may take the upload over (any other claimant sees it as settled for now); after it,
  anyone may (a lost execution is started again). A claim made by a job task names its `holder`
  (`TOKEN#EXECUTION` or `EXECUTION/TASK`): a later attempt of the same task may take it over,
  because Cloud Run never runs two attempts of one task at once.
The lease (default 900 s) outlives the function's run (FUNCTION_TIMEOUT_SECONDS, at most 540 s;
start-up refuses a lease that does not), so a live worker is never doubled; a dead one blocks its
upload for at most one lease. `claimed` wraps claim -> finish / release for every flow.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import TransientError
from ..logs import timed
from .documents import read_document, write_document
from .objects import ObjectStore, PreconditionFailed

# `attached`: the final state of a late metrics.json's own record (handlers/late/arrivals.py).
FINAL_STATES = ("registered", "rejected", "superseded", "attached")
SCHEMA = 1
_WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    bucket: str
    name: str  # record object name
    generation: int  # our claim's record generation; the precondition for finishing
    record: dict[str, Any]


@dataclass(frozen=True)
class AlreadyFinal:
    record: dict[str, Any]


@dataclass
class Held:
    """A claim while `claimed` holds it: `finish` writes the final record (once)."""

    records: Records
    claim: Claim
    record: dict[str, Any] | None = field(default=None)

    def finish(self, outcome: dict[str, Any]) -> dict[str, Any]:
        self.record = self.records.finish(self.claim, outcome)
        return self.record


@contextmanager
def claimed(
    records: Records,
    bucket: str,
    name: str,
    identity: dict[str, Any],
    *,
    keep: tuple[type[BaseException], ...] = (),
    timings: dict[str, float] | None = None,
    holder: str | None = None,
) -> Iterator[Held | AlreadyFinal]:
    """Claim the record gs://bucket/name for the body, which settles it with `Held.finish`.

    The one home of claim -> finish / release: an `AlreadyFinal` is handed to the body as is (a
    duplicate: nothing to hold); any exception out of the body gives an unfinished claim back
    (`release`, so a redelivery need not wait out the lease) and reaches the platform as a
    `TransientError` (redelivery), an unexpected one wrapped as "unexpected failure". Exceptions
    in `keep` leave the claim held and pass unchanged (an operation that may still create
    something: a redelivery now could create it twice). A body that returns without finishing
    gives the claim back too. `timings` gets the claim's own duration as `claim`. `holder`: the
    job execution and task this claim is made for (see the module docstring)."""
    with timed({} if timings is None else timings, "claim"):
        claim = records.claim(bucket, name, identity, holder=holder)
    if isinstance(claim, AlreadyFinal):
        yield claim
        return
    held = Held(records, claim)
    try:
        yield held
    except keep:
        raise
    except Exception as exc:
        if held.record is None:
            records.release(claim, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TransientError):
            raise
        raise TransientError(f"unexpected failure: {type(exc).__name__}: {exc}") from exc
    if held.record is None:
        records.release(claim, "the flow ended without a final record")


def _handed_to(record: dict[str, Any], holder: str | None) -> bool:
    """May `holder` take over this `handed_off` record? The job given its token may; anyone may
    once the hand-off has expired (the execution was lost)."""
    handoff = record.get("handoff") or {}
    if float(handoff.get("expires_epoch", 0)) <= time.time():
        return True
    token = handoff.get("token")
    return holder is not None and bool(token) and holder.split("#")[0] == token


def _held_by(record: dict[str, Any], holder: str | None) -> dict[str, Any]:
    kept = {k: v for k, v in record.items() if k != "holder"}
    return {**kept, "holder": holder} if holder else kept


def record_name(state_prefix: str, source_path: str, key: str) -> str:
    return f"{state_prefix}uploads/{source_path.rstrip('/')}/{key}.json"


def now_iso(clock: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if clock is None else clock, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Records:
    def __init__(self, store: ObjectStore, lease_seconds: int) -> None:
        self._store = store
        self._lease = lease_seconds

    def claim(
        self, bucket: str, name: str, base: dict[str, Any], *, holder: str | None = None
    ) -> Claim | AlreadyFinal:
        """Claim the upload recorded at gs://bucket/name, or report that it is already final
        (or handed off to a job execution that is not `holder`'s and has not expired)."""
        token = uuid.uuid4().hex  # tells our own claim from another's after a lost reply
        for _ in range(5):  # a lost race re-reads; five rounds is far more than one upload needs
            current = self._read(bucket, name)
            if current is None:
                record = self._claimed(_held_by(base, holder), token, attempts=1, history=[])
                try:
                    generation = self._write(bucket, name, record, if_generation_match=0)
                except PreconditionFailed:
                    continue
                return Claim(bucket, name, generation, record)
            existing, generation = current
            if existing.get("claim_token") == token:  # our write landed; only its reply was lost
                return Claim(bucket, name, generation, existing)
            if existing.get("state") in FINAL_STATES:
                return AlreadyFinal(existing)
            if existing.get("state") == "handed_off" and not _handed_to(existing, holder):
                return AlreadyFinal(existing)
            expires = float(existing.get("lease_expires_epoch", 0))
            same_task = holder is not None and existing.get("holder") == holder
            if existing.get("state") == "claimed" and expires > time.time() and not same_task:
                raise TransientError(
                    f"upload is being processed by {existing.get('claimed_by', 'another worker')} "
                    f"until {now_iso(expires)}; asking for redelivery",
                    code="in_progress_elsewhere",
                )
            record = self._claimed(
                _held_by({**existing, **base}, holder),
                token,
                attempts=int(existing.get("attempts", 0)) + 1,
                history=list(existing.get("history", [])),
            )
            try:
                new_generation = self._write(bucket, name, record, if_generation_match=generation)
            except PreconditionFailed:
                continue
            return Claim(bucket, name, new_generation, record)
        raise TransientError(f"could not claim gs://{bucket}/{name}: too much contention")

    def finish(self, claim: Claim, outcome: dict[str, Any]) -> dict[str, Any]:
        """Write the final record over our claim. Returns the record as written (or found)."""
        record = {**claim.record, **outcome, "updated": now_iso()}
        record.pop("lease_expires", None)
        record.pop("lease_expires_epoch", None)
        record["history"] = [
            *claim.record.get("history", []),
            {"at": record["updated"], "state": record["state"], "by": _WORKER_ID},
        ]
        try:
            self._write(claim.bucket, claim.name, record, if_generation_match=claim.generation)
        except PreconditionFailed:
            # Our lease was taken over (we overran it). The other worker finds the same version
            # through the lineage labels, so the outcome is still one version; keep its record.
            current = self._read(claim.bucket, claim.name)
            if current is not None and current[0].get("state") in FINAL_STATES:
                return current[0]
            raise TransientError(f"lost the claim on gs://{claim.bucket}/{claim.name}") from None
        return record

    def release(self, claim: Claim, error: str) -> None:
        """Give the upload back after a transient failure, so redelivery need not wait a lease."""
        record = {
            **claim.record,
            "state": "retrying",
            "last_error": error[:2000],
            "lease_expires_epoch": 0,
            "updated": now_iso(),
        }
        record.pop("lease_expires", None)
        try:
            self._write(claim.bucket, claim.name, record, if_generation_match=claim.generation)
        except (PreconditionFailed, TransientError):
            pass  # the lease will expire by itself; nothing is lost

    def read(self, bucket: str, name: str) -> dict[str, Any] | None:
        current = self._read(bucket, name)
        return current[0] if current else None

    def update(
        self, bucket: str, name: str, change: Callable[[dict[str, Any]], dict[str, Any]], note: str
    ) -> dict[str, Any] | None:
        """Change a final record after the fact (e.g. late metrics attached to a registered upload):
        read-modify-write with a generation precondition, so concurrent changes are never lost.
        `note` goes into `history`. Returns the record as written (None: there is no record)."""
        for _ in range(5):
            current = self._read(bucket, name)
            if current is None:
                return None
            record = change(current[0])
            record["updated"] = now_iso()
            record["history"] = [
                *record.get("history", []),
                {"at": record["updated"], "state": note, "by": _WORKER_ID},
            ]
            try:
                self._write(bucket, name, record, if_generation_match=current[1])
            except PreconditionFailed:
                continue
            return record
        raise TransientError(f"could not update gs://{bucket}/{name}: too much contention")

    def _claimed(
        self, base: dict[str, Any], token: str, *, attempts: int, history: list[dict[str, Any]]
    ) -> dict[str, Any]:
        now = time.time()
        return {
            **base,
            "schema": SCHEMA,
            "state": "claimed",
            "claimed_by": _WORKER_ID,
            "claim_token": token,
            "attempts": attempts,
            "lease_expires": now_iso(now + self._lease),
            "lease_expires_epoch": now + self._lease,
            "created": base.get("created", now_iso(now)),
            "updated": now_iso(now),
            "history": [*history, {"at": now_iso(now), "state": "claimed", "by": _WORKER_ID}],
        }

    def _read(self, bucket: str, name: str) -> tuple[dict[str, Any], int] | None:
        # A record that is not JSON is treated like a released claim: taken over and rewritten.
        return read_document(self._store, bucket, name, corrupt={"state": "corrupt"})

    def _write(
        self, bucket: str, name: str, record: dict[str, Any], *, if_generation_match: int
    ) -> int:
        return write_document(
            self._store, bucket, name, record, if_generation_match=if_generation_match
        )
