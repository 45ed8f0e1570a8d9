"""The canary lifecycle on a registrar-managed endpoint: one model per endpoint, and on it at most
the champion and one canary.

- **One model per endpoint.** `DEPLOY_ENDPOINT` is a template (`{model}` is the model's id), so
  each model gets its own endpoint; an endpoint the registrar creates carries the labels
  `managed-by=gcs-model-registrar` and `registrar-model=<model id>`. A canary of model A on an
  endpoint labelled for, or serving, another model is never started (Vertex routes every request
  across *all* deployed models by the endpoint's traffic split: B would answer A's clients).
- **Roles come from the endpoint itself**: the champion is the model's deployment with the largest
  share of the traffic (the older one on a tie); the canary the newest other one that has traffic;
  a deployment of the model at 0% is an orphan (it still bills `min_replica_count` nodes) and is
  undeployed whenever the endpoint is idle.
- **A newer canary replaces the older one**: DeployModel gives the newer `DEPLOY_TRAFFIC`% and the
  champion the rest, so the older drops to 0%; once the newer has landed, the older is undeployed.
- **Races**: every decision for a model is taken under the model's lease in the promotion ledger
  (the gate's lock, gcs/ledger.py), held only while deciding and starting, never while waiting.
  A DeployModel's traffic split cannot be made conditional (the request has no etag), so nothing
  is started while another operation runs on the endpoint (ListOperations `done=false`): the
  decision waits up to `DEPLOY_WAIT_SECONDS` for it, then records `deferred` with the command that
  finishes it. Traffic-only changes (promote, abort) use the endpoint's etag. Whether Vertex
  refuses a second mutation of a busy endpoint or lets the later one win is not documented; the
  registrar never issues one, and the tests run against both emulator modes.
- **Time**: a run only starts operations and waits at most `DEPLOY_WAIT_SECONDS` (and never past
  the run's deadline) for them; what is left is written down - the record's `follow_with` and
  `finish_with` commands, and the ledger's `canary` section that the next decision (or
  `registrar canary reconcile`) completes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import PermanentError, TransientError
from ..gcs.ledger import Held, Ledger
from ..gcs.records import Records, now_iso
from .endpoints import (
    MODEL_LABEL,
    NEW_DEPLOYMENT,
    DeployedModelInfo,
    EndpointInfo,
    EndpointRegistry,
    Operation,
)
from .labels import MANAGED_BY, MANAGED_BY_LABEL

DEFAULT = "default"
MAX_STEPS = 50  # the ledger's canary history is bounded like the gate's
_POLL = 0.25


def endpoint_ref(template: str, model_id: str) -> str:
    """`DEPLOY_ENDPOINT` for one model: `{model}` becomes the model's id."""
    return template.replace("{model}", model_id)


def model_id(model: str) -> str:
    return model.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Roles:
    champion: DeployedModelInfo | None
    canary: DeployedModelInfo | None
    orphans: tuple[DeployedModelInfo, ...]  # the model's deployments at 0% traffic
    foreign: tuple[DeployedModelInfo, ...]  # deployments of other models


def roles(endpoint: EndpointInfo, model: str) -> Roles:
    mine = [d for d in endpoint.deployed if d.model == model]  # oldest first
    foreign = tuple(d for d in endpoint.deployed if d.model != model)
    serving = [d for d in mine if endpoint.share(d.id) > 0]
    champion = None
    if serving:
        top = max(endpoint.share(d.id) for d in serving)
        champion = next(d for d in serving if endpoint.share(d.id) == top)
    others = [d for d in serving if d is not champion]
    canary = others[-1] if others else None
    orphans = tuple(d for d in mine if endpoint.share(d.id) == 0)
    return Roles(champion, canary, orphans, foreign)


def foreign_reason(endpoint: EndpointInfo, model: str) -> str | None:
    """Why `model` must not be deployed on `endpoint` (it belongs to another model), or None."""
    owner = endpoint.labels.get(MODEL_LABEL)
    if owner and owner != model_id(model):
        return (
            f"endpoint {endpoint.name} is labelled {MODEL_LABEL}={owner}: it serves another "
            "model, and Vertex would route part of that model's requests to this one. Give each "
            "model its own endpoint (DEPLOY_ENDPOINT with {model}, e.g. 'serving-{model}')."
        )
    others = sorted({model_id(d.model) for d in endpoint.deployed if d.model != model})
    if others:
        return (
            f"endpoint {endpoint.name} serves model(s) {', '.join(others)}: deploying another "
            "model there would mix their predictions. Give each model its own endpoint "
            "(DEPLOY_ENDPOINT with {model}, e.g. 'serving-{model}')."
        )
    return None


@dataclass
class Canaries:
    """The lifecycle, for the function (start) and the CLI (start, promote, abort, reconcile)."""

    endpoints: EndpointRegistry
    ledger: Ledger
    records: Records | None
    bucket: str  # where the model's ledger lives (the gate's bucket)
    wait_seconds: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    # ---- the function's step, and `registrar canary start` ---------------------------------
    def start(
        self,
        *,
        model: str,
        version_id: str,
        display_name: str,
        traffic: int,
        endpoint: str,
        record: str | None = None,
        deadline: float | None = None,
        machine: Callable[[EndpointInfo], Any] | None = None,
        only_default: bool = True,
    ) -> dict[str, Any]:
        """Deploy `model@version_id` as the endpoint's canary (its champion when nothing of the
        model serves there) and finish replacing the older canary when time allows. Returns the
        note for the upload's record; raises only PermanentError/TransientError."""
        until = self._until(deadline)
        version = f"{model}@{version_id}"
        note: dict[str, Any] = {"endpoint": endpoint, "version": version,
                                "traffic_percent": traffic}  # fmt: skip
        info, created = self.endpoints.ensure_endpoint(
            endpoint, timeout=max(1.0, until - self.clock()), labels=_labels(model)
        )
        note.update(endpoint=info.name, endpoint_created=created)
        while True:
            with self._held(model) as held:
                info = self.endpoints.get_endpoint(info.name)
                refused = foreign_reason(info, model)
                if refused:
                    return {**note, "state": "skipped", "reason": refused}
                if info.of_version(model, version_id):
                    return {**note, "state": "skipped",
                            "reason": "this version is already deployed there"}  # fmt: skip
                if only_default and not self._is_default(model, version_id):
                    return {**note, "state": "skipped", "reason": "a newer version became the "
                            "default meanwhile; its own canary replaces this one"}  # fmt: skip
                running = self.endpoints.running_operations(info.name)
                if not running:
                    self._adopt(info, model)
                    self._undeploy_orphans(held, info, model)
                    running = self.endpoints.running_operations(info.name)
                if not running:
                    started = self._deploy(held, info, model, version_id, display_name, traffic,
                                           record, machine)  # fmt: skip
                    break
            if self.clock() >= until:
                return {
                    **note,
                    "state": "deferred",
                    "reason": f"another operation is running on the endpoint ({running[0]}); a "
                    "DeployModel now would overwrite the traffic split it sets when it lands",
                    "finish_with": f"registrar canary start {display_name}@{version_id}",
                }
            self.wait_idle(info.name, until)
        note.update(started)
        landed = self._wait_for(started["operation"], until)
        note["landed"] = landed
        if landed:
            with self._held(model) as held:
                info = self.endpoints.get_endpoint(info.name)
                if not self.endpoints.running_operations(info.name):
                    note["replaced"] = self._undeploy_orphans(held, info, model)
        if started.get("replaces") and not note.get("replaced"):
            note["finish_with"] = f"registrar canary reconcile {display_name}"
        return note

    # ---- the CLI's steps ---------------------------------------------------------------------
    def reconcile(self, model: str, endpoint: str) -> dict[str, Any]:
        """Undeploy the model's 0% deployments on an idle endpoint (finish replacements)."""
        info = self.endpoints.require_endpoint(endpoint)
        with self._held(model) as held:
            info = self.endpoints.get_endpoint(info.name)
            running = self.endpoints.running_operations(info.name)
            if running:
                return {"endpoint": info.name, "state": "busy", "running": running}
            undeployed = self._undeploy_orphans(held, info, model)
        return {"endpoint": info.name, "state": "reconciled", "undeployed": undeployed}

    def promote(self, model: str, endpoint: str) -> dict[str, Any]:
        """Finish the canary: it takes 100% of the traffic and the old champion is undeployed."""
        return self._finish(model, endpoint, promote=True)

    def abort(self, model: str, endpoint: str) -> dict[str, Any]:
        """Abort the canary: the champion takes its traffic back and the canary is undeployed."""
        return self._finish(model, endpoint, promote=False)

    def _finish(self, model: str, endpoint: str, *, promote: bool) -> dict[str, Any]:
        action = "promoted" if promote else "aborted"
        info = self.endpoints.require_endpoint(endpoint)
        with self._held(model) as held:
            info = self.endpoints.get_endpoint(info.name)
            running = self.endpoints.running_operations(info.name)
            if running:
                raise TransientError(
                    f"an operation is running on {info.name} ({running[0]}); wait for it "
                    f"(`registrar operation {running[0]} --wait`) and run the command again.",
                    code="endpoint_busy",
                )
            found = roles(info, model)
            if found.canary is None or found.champion is None:
                raise PermanentError(
                    f"no canary of {model} on {info.name}: nothing to "
                    f"{'promote' if promote else 'abort'} (see `registrar canary status`).",
                    code="no_canary",
                )
            winner, loser = (found.canary, found.champion) if promote else (
                found.champion, found.canary)  # fmt: skip
            held.check(f"the traffic change of {info.name}")
            updated = self.endpoints.set_traffic(info.name, lambda _e: {winner.id: 100})
            held.check(f"undeploying {loser.id}")
            operation = self.endpoints.undeploy(updated.name, loser.id)
            self._remember(held, loser, "undeployed", operation.name,
                           "replaced by the canary" if promote else "canary aborted")  # fmt: skip
            self._remember(held, winner, "champion" if promote else "serving",
                           None, action)  # fmt: skip
            self._note_record(held, loser, action, operation.name)
            self._note_record(held, winner, action, None)
        landed = self._wait_for(operation.name, self._until(None))
        return {
            "endpoint": info.name,
            "state": action,
            "champion": winner.version_name,
            "undeployed": loser.version_name,
            "operation": operation.name,
            "landed": landed,
            "follow_with": f"registrar operation {operation.name} --wait",
        }

    def status(self, model: str, endpoint: str) -> dict[str, Any]:
        info = self.endpoints.require_endpoint(endpoint)
        found = roles(info, model)
        doc = self.ledger.read(self.bucket, model).get("canary") or {}

        def row(d: DeployedModelInfo | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {"deployed_model_id": d.id, "version": d.version_name,
                    "traffic_percent": info.share(d.id)}  # fmt: skip

        return {
            "endpoint": info.name,
            "labels": info.labels,
            "champion": row(found.champion),
            "canary": row(found.canary),
            "orphans": [row(d) for d in found.orphans],
            "other_models": [row(d) for d in found.foreign],
            "running": self.endpoints.running_operations(info.name),
            "history": (doc.get("history") or [])[-10:],
        }

    # ---- internals -------------------------------------------------------------------------
    def _deploy(
        self,
        held: Held,
        info: EndpointInfo,
        model: str,
        version_id: str,
        display_name: str,
        traffic: int,
        record: str | None,
        machine: Callable[[EndpointInfo], Any] | None,
    ) -> dict[str, Any]:
        found = roles(info, model)
        if found.champion is None:  # nothing of the model serves: the new version is the champion
            split, role = {NEW_DEPLOYMENT: 100}, "champion"
        else:
            split = {found.champion.id: 100 - traffic, NEW_DEPLOYMENT: traffic}
            role = "canary"
        shape = machine(info) if machine else None
        held.check(f"DeployModel of {model}@{version_id}")
        operation: Operation = self.endpoints.deploy(
            info.name,
            f"{model}@{version_id}",
            traffic_split=split,
            display_name=f"{display_name} v{version_id}"[:128],
            **({"machine_type": shape.machine_type, "accelerator": shape.accelerator,
                "max_replicas": shape.max_replicas} if shape else {}),
        )  # fmt: skip
        canary = held.doc.setdefault("canary", {})
        canary["endpoint"] = info.name
        if record:  # whose record later steps (replaced, promoted, aborted) are written on
            canary.setdefault("records", {})[version_id] = {"record": record, "bucket": self.bucket}
        self._step(held, {"step": "started", "role": role, "version_id": version_id,
                          "operation": operation.name,
                          "replaces": found.canary.id if found.canary else None})  # fmt: skip
        started: dict[str, Any] = {
            "state": "started",
            "role": role,
            "operation": operation.name,
            "traffic_split": {("new" if k == NEW_DEPLOYMENT else k): v for k, v in split.items()},
            "started": now_iso(),
            "follow_with": f"registrar operation {operation.name} --wait",
        }
        if shape is not None:
            started["machine_type"] = shape.machine_type
        if found.canary is not None:  # drops to 0% when this lands, then is undeployed
            started["replaces"] = {"deployed_model_id": found.canary.id,
                                   "version": found.canary.version_name}  # fmt: skip
        return started

    def _undeploy_orphans(self, held: Held, info: EndpointInfo, model: str) -> list[dict[str, Any]]:
        """Undeploy the model's deployments at 0% (one operation at a time: the endpoint is busy
        while one runs; what is left is done by the next decision)."""
        done: list[dict[str, Any]] = []
        for orphan in roles(info, model).orphans:
            held.check(f"undeploying {orphan.id}")
            operation = self.endpoints.undeploy(info.name, orphan.id)
            self._remember(held, orphan, "undeployed", operation.name, "replaced by a newer canary")
            self._note_record(held, orphan, "replaced", operation.name)
            done.append({"deployed_model_id": orphan.id, "version": orphan.version_name,
                         "operation": operation.name})  # fmt: skip
            if not self._wait_for(operation.name, self.clock() + min(self.wait_seconds, 30.0)):
                break  # still running: the endpoint is busy until it lands
            info = self.endpoints.get_endpoint(info.name)
        return done

    def _remember(
        self, held: Held, d: DeployedModelInfo, state: str, operation: str | None, why: str
    ) -> None:
        self._step(held, {"step": state, "deployed_model_id": d.id, "version_id": d.version_id,
                          "operation": operation, "why": why})  # fmt: skip

    def _step(self, held: Held, step: dict[str, Any]) -> None:
        step = {"at": now_iso(), **step}
        history = held.doc.setdefault("canary", {}).setdefault("history", [])
        history.append(step)
        del history[:-MAX_STEPS]

    def _note_record(
        self, held: Held, d: DeployedModelInfo, state: str, operation: str | None
    ) -> None:
        """Write the step on the record of the upload that deployed `d` (when known)."""
        entry = (held.doc.get("canary", {}).get("records") or {}).get(d.version_id) or {}
        if self.records is None or not entry.get("record"):
            return
        step = {"at": now_iso(), "state": state, "operation": operation,
                "deployed_model_id": d.id}  # fmt: skip

        def change(record: dict[str, Any]) -> dict[str, Any]:
            deployment = dict(record.get("deployment") or {})
            deployment["state"] = state
            deployment["steps"] = [*deployment.get("steps", []), step][-MAX_STEPS:]
            return {**record, "deployment": deployment}

        self.records.update(entry.get("bucket") or self.bucket, entry["record"], change,
                            f"deployment {state}")  # fmt: skip

    def _is_default(self, model: str, version_id: str) -> bool:
        """Racing uploads reach this step in any order: only the model's current default is
        deployed, so an older version never replaces a newer one's canary."""
        return self.endpoints.get_model(model, DEFAULT).version_id == version_id

    def _adopt(self, info: EndpointInfo, model: str) -> None:
        """Label an endpoint that serves only this model (or nothing) as this model's."""
        if info.labels.get(MODEL_LABEL) == model_id(model):
            return
        self.endpoints.set_labels(info.name, {**info.labels, **_labels(model)})

    @contextmanager
    def _held(self, model: str) -> Iterator[Held]:
        with self.ledger.held(self.bucket, model) as held:
            yield held

    def _wait_for(self, operation: str, until: float) -> bool:
        """True once `operation` is done (False when `until` comes first). A failed operation
        raises its translated error."""
        while True:
            state = self.endpoints.operation_state(operation)
            if state.done:
                if state.error:
                    raise TransientError(f"{operation} failed: {state.error}", code="deploy_failed")
                return True
            if self.clock() >= until:
                return False
            self.sleep(min(_POLL, max(0.0, until - self.clock())))

    def wait_idle(self, endpoint: str, until: float) -> None:
        while self.clock() < until and self.endpoints.running_operations(endpoint):
            self.sleep(min(_POLL, max(0.0, until - self.clock())))

    def _until(self, deadline: float | None) -> float:
        until = self.clock() + self.wait_seconds
        return min(until, deadline) if deadline is not None else until


def _labels(model: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, MODEL_LABEL: model_id(model)}
