"""The promotion ledger: one JSON object per model that serialises its gate decisions.

`gs://BUCKET/{STATE_PREFIX}gate/{model_id}.json` holds a short lease (who is deciding for this model
right now), each version's last decision (`versions`) and a bounded `history`. Vertex has no
compare-and-set on aliases (MergeVersionAliases is unconditional), so the gate takes this lease —
a create/replace with an `ifGenerationMatch` precondition, like the upload records — before it
reads the current default and moves an alias, and writes its decision when it gives the lease
back. Decisions for one model therefore happen one after another, each seeing the previous one's
alias moves. A holder that dies leaves the lease to expire (`LEASE_SECONDS`); a holder never
starts a Vertex mutation when less than `MARGIN_SECONDS` of its lease is left.
"""

from __future__ import annotations

import copy
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import TransientError
from ..logs import get_logger
from .documents import read_document, write_document
from .objects import ObjectStore, PreconditionFailed
from .records import now_iso

LEASE_SECONDS = 120.0
MARGIN_SECONDS = 20.0
WAIT_SECONDS = 30.0
MAX_HISTORY = 500
_LOG = get_logger(__name__)
_PROCESS = f"{socket.gethostname()}:{os.getpid()}"


def ledger_name(state_prefix: str, model: str) -> str:
    return f"{state_prefix}gate/{model.rsplit('/', 1)[-1]}.json"


@dataclass
class Held:
    """The ledger while its lease is ours: change `doc`, it is written when the lease is returned."""

    uri: str
    doc: dict[str, Any]
    expires_epoch: float
    clock: Callable[[], float] = field(repr=False, default=time.time)

    def check(self, what: str) -> None:
        """Refuse to start `what` (a Vertex mutation) unless the lease surely outlasts it."""
        if self.clock() > self.expires_epoch - MARGIN_SECONDS:
            raise TransientError(
                f"the gate lease on {self.uri} is about to expire; not starting {what}",
                code="gate_lease_expired",
            )

    @property
    def versions(self) -> dict[str, dict[str, Any]]:
        return self.doc.setdefault("versions", {})

    def remember(self, version_id: str, entry: dict[str, Any]) -> None:
        self.versions[version_id] = entry
        history = self.doc.setdefault("history", [])
        history.append({"version_id": version_id, **entry})
        del history[:-MAX_HISTORY]


class Ledger:
    def __init__(
        self,
        store: ObjectStore,
        state_prefix: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._prefix = state_prefix
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._sleep = sleep

    def uri(self, bucket: str, model: str) -> str:
        return f"gs://{bucket}/{ledger_name(self._prefix, model)}"

    def read(self, bucket: str, model: str) -> dict[str, Any]:
        """The ledger as it is (no lease): `{}` when the model has none yet."""
        found = self._read(bucket, ledger_name(self._prefix, model))
        return found[0] if found else {}

    @contextmanager
    def held(self, bucket: str, model: str) -> Iterator[Held]:
        """Hold the model's lease for the block; the changed ledger is written on a clean exit.

        Waits up to `wait_seconds` for another holder, then raises TransientError (the event is
        redelivered). On an exception inside the block the lease is given back unchanged.
        """
        name = ledger_name(self._prefix, model)
        uri = f"gs://{bucket}/{name}"
        token = f"{_PROCESS}:{uuid.uuid4().hex[:8]}"
        doc, generation, expires = self._acquire(bucket, name, uri, model, token)
        before = copy.deepcopy(doc)
        held = Held(uri, doc, expires, self._clock)
        try:
            yield held
        except BaseException:
            self._write_back(bucket, name, before, generation, lost_is_error=False)
            raise
        self._write_back(bucket, name, held.doc, generation, lost_is_error=True)

    def _acquire(
        self, bucket: str, name: str, uri: str, model: str, token: str
    ) -> tuple[dict[str, Any], int, float]:
        deadline = self._clock() + self._wait
        delay = 0.05
        while True:
            doc, generation = self._read(bucket, name) or ({}, 0)
            lease = doc.get("lease") or {}
            now = self._clock()
            if float(lease.get("expires_epoch", 0)) > now:
                if now >= deadline:
                    raise TransientError(
                        f"the promotion gate of {model} is busy ({lease.get('holder')} holds "
                        f"{uri} until {lease.get('expires')}); asking for redelivery",
                        code="in_progress_elsewhere",
                    )
                self._sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 1.0)
                continue
            expires = now + self._lease
            doc = {
                **doc,
                "schema": 1,
                "model": model,
                "lease": {"holder": token, "expires_epoch": expires, "expires": now_iso(expires)},
            }
            try:
                written = self._write(bucket, name, doc, generation)
            except PreconditionFailed:
                continue  # someone else took it between our read and write: look again
            return doc, written, expires

    def _write_back(
        self, bucket: str, name: str, doc: dict[str, Any], generation: int, *, lost_is_error: bool
    ) -> None:
        """Write `doc` without the lease over our lease's generation."""
        final = {k: v for k, v in doc.items() if k != "lease"}
        final["updated"] = now_iso(self._clock())
        try:
            self._write(bucket, name, final, generation)
        except PreconditionFailed:
            if lost_is_error:
                raise TransientError(
                    f"lost the gate lease on gs://{bucket}/{name} (held past its expiry); the "
                    "decision is made again on redelivery",
                    code="gate_lease_expired",
                ) from None
            _LOG.warning("gate lease on gs://%s/%s was taken over; not released", bucket, name)
        except TransientError:
            if lost_is_error:
                raise
            _LOG.warning("could not release the gate lease on gs://%s/%s", bucket, name)

    def _read(self, bucket: str, name: str) -> tuple[dict[str, Any], int] | None:
        return read_document(self._store, bucket, name, corrupt={})  # not JSON: start afresh

    def _write(self, bucket: str, name: str, doc: dict[str, Any], generation: int) -> int:
        return write_document(self._store, bucket, name, doc, if_generation_match=generation)
