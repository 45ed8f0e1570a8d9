"""Late arrivals: a file written after the upload it belongs to was settled.

A stage beside the main path (`Pipeline.handle_model`), handed its collaborators explicitly
(store, records, registry, validator, notifier); every flow here claims its own record through
`gcs.records.claimed`, like the main path.

* `metrics_file` — a `metrics.json` event, routed here by triage. The file's own record
  (`{STATE_PREFIX}uploads/<dir>/metrics.json/g<generation>.json`) is its claim; it is attached to
  every registered upload in its directory (the SavedModel rooted there, each `.keras` directly in
  it): evaluation imported, gate decided then (`registry.gated.attach`), the upload's record
  updated. An upload whose record does not exist yet reads the file itself when it is registered
  (it is claimed before its metrics are read), so the event only waits; one being registered
  right now makes the event ask for redelivery. The newest generation of `metrics.json` wins: an
  older one (or a redelivery) changes nothing, a newer one is imported and decided again. A model
  object's own `metrics` metadata takes precedence over any `metrics.json`.
* `fingerprint` — a `fingerprint.pb` that reaches a SavedModel directory already registered
  without one (the main path finds the upload's final record and hands it here): checked in the
  sandbox against the registered save; one of another save gets its own rejection record.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import PermanentError, Rejected, Superseded, TransientError, Waiting
from ..gcs.objects import ObjectInfo, ObjectStore
from ..gcs.records import FINAL_STATES, AlreadyFinal, Records, claimed, record_name
from ..intake import metrics as intake
from ..intake import uploads as artifacts
from ..intake.download import fetch
from ..intake.events import ObjectEvent
from ..intake.layout import SavedModelMember
from ..intake.listing import uploads_in
from ..logs import timed
from ..notify import Notifier
from ..outcome import Outcome
from ..registry import gated
from ..registry.interface import ModelRegistry
from ..settings import Settings


class FingerprintChecker(Protocol):
    """What this stage asks of the validator (a part of validation.interface.ModelValidator)."""

    def check_late_fingerprint(self, directory: Path) -> None: ...

    def asset_names(self, graph: bytes) -> frozenset[str] | None: ...


@dataclass(frozen=True)
class _Target:
    upload: artifacts.Upload
    record_object: str
    record: dict[str, Any] | None


@dataclass(frozen=True)
class LateArrivals:
    settings: Settings
    store: ObjectStore
    records: Records
    registry: Callable[[], ModelRegistry]  # built on first use (the Vertex SDK import is slow)
    validator: Callable[[], FingerprintChecker]  # likewise (the sandbox worker)
    notifier: Notifier
    # One sandbox worker per instance: the main path and this stage take turns on it.
    validation_lock: threading.Lock

    # -- metrics.json ------------------------------------------------------------------------
    def metrics_file(
        self, event: ObjectEvent, directory: str, base: dict[str, Any], deadline: float
    ) -> tuple[Outcome, int]:
        """One `metrics.json` finalize event: the acknowledged outcome and its log level, or
        TransientError (redelivery); the caller logs either, as for every event. `deadline`
        (monotonic): when the run's waits must end."""
        store, records, settings = self.store, self.records, self.settings
        live = store.get_object(event.bucket, event.name)
        if live is None or live.generation != event.generation:
            why = "was deleted" if live is None else f"was replaced by generation {live.generation}"
            message = f"{event.uri} generation {event.generation} {why}, which has its own event"
            return Outcome("superseded", message, base), logging.INFO
        own_record = record_name(settings.state_prefix, event.name, f"g{event.generation}")
        existing = records.read(event.bucket, own_record)
        if existing is not None and existing.get("state") in FINAL_STATES:
            message = f"already {existing.get('state')}: duplicate delivery acknowledged"
            fields = {**base, "state": existing.get("state")}
            return Outcome("duplicate", message, fields), logging.INFO
        try:
            found: intake.Metrics | intake.MetricsProblem = intake.read_file(live, store)
        except intake.MetricsRejected as exc:
            found = intake.MetricsProblem(
                "rejected", exc.code, str(exc), live.uri, live.generation, "file"
            )
        except Superseded as exc:
            return Outcome("superseded", str(exc), base), logging.INFO

        targets, incomplete = self._targets(event.bucket, directory)
        registered: list[_Target] = []
        if isinstance(found, intake.Metrics):
            busy = [
                t.upload.uri
                for t in targets
                if t.record and t.record.get("state") not in FINAL_STATES
            ]
            if busy:
                raise TransientError(
                    f"{', '.join(busy)} is being registered right now; these metrics are "
                    "attached after it finishes",
                    code="in_progress_elsewhere",
                )
            registered = [t for t in targets if t.record and t.record.get("state") == "registered"]
            if not registered:
                if incomplete or not targets or any(t.record is None for t in targets):
                    message = (
                        f"no registered model in gs://{event.bucket}/{directory} yet; its "
                        f"registration reads {event.uri}"
                    )
                    return Outcome("waiting", message, base), logging.INFO
                message = (
                    f"no registered model upload in gs://{event.bucket}/{directory} to attach it to"
                )
                return Outcome("ignored", message, base), logging.INFO

        identity = {
            "source": event.uri,
            "bucket": event.bucket,
            "kind": "metrics",
            "record": f"gs://{event.bucket}/{own_record}",
            "members": {intake.METRICS_FILE: event.generation},
        }
        with claimed(records, event.bucket, own_record, identity) as held:
            if isinstance(held, AlreadyFinal):
                state = held.record.get("state")
                message = f"already {state}: duplicate delivery acknowledged"
                return Outcome("duplicate", message, base), logging.INFO
            if isinstance(found, intake.MetricsProblem):
                reason = {"code": found.code, "message": found.message}
                self.notifier.publish(held.finish({"state": "rejected", "reason": reason}))
                fields = {**base, "reason": found.code, "record": identity["record"]}
                message = (
                    f"metrics rejected (the models they describe are not affected): {found.message}"
                )
                return Outcome("rejected", message, fields), logging.ERROR
            results = [self._attach(found, target, deadline) for target in registered]
            versions = [r["version"] for r in results if r["result"] in ("attached", "duplicate")]
            record = held.finish(
                {
                    "state": "attached",
                    "values": found.values,
                    "uploads": results,
                    **({"version_name": versions[0]} if len(versions) == 1 else {}),
                }
            )
        self.notifier.publish(record)
        attached = [r for r in results if r["result"] == "attached"]
        summary = "; ".join(f"{r['upload']}: {r['result']}" for r in results)
        fields = {**base, "record": identity["record"], "uploads": results}
        if len(attached) == 1 and "gate" in attached[0]:
            fields["gate"] = attached[0]["gate"]
        if attached:
            fields["version_name"] = attached[0]["version"]
        message = f"{event.uri}: attached to {len(attached)} of {len(results)} upload(s): {summary}"
        if attached:
            word = "attached"
        elif all(r["result"] == "duplicate" for r in results):
            word = "duplicate"  # the registration read this generation itself
        else:
            word = "ignored"
        return Outcome(word, message, fields), logging.INFO

    def _attach(self, found: intake.Metrics, target: _Target, deadline: float) -> dict[str, Any]:
        settings = self.settings
        upload, record = target.upload, target.record or {}
        model, version_id = str(record.get("model")), str(record.get("version_id"))
        result: dict[str, Any] = {"upload": upload.uri, "version": record.get("version_name")}
        prior = record.get("metrics") or {}
        if prior.get("origin") == "metadata":
            return {**result, "result": "ignored", "reason": "its model object's own `metrics` "
                    "metadata takes precedence over metrics.json"}  # fmt: skip
        if intake.is_stale(found.generation, upload.generation, settings):
            return {**result, "result": "ignored", "reason": "older than the model by more than "
                    "DIRECTORY_UPLOAD_WINDOW_SECONDS: left from an earlier upload"}  # fmt: skip
        prior_generation = int(prior.get("generation") or 0) if prior.get("origin") == "file" else 0
        if prior_generation > found.generation:
            return {**result, "result": "ignored",
                    "reason": f"a newer metrics.json (generation {prior_generation}) is attached"}  # fmt: skip
        if prior_generation == found.generation and prior.get("state") != "rejected":
            return {**result, "result": "duplicate"}
        extra = gated.attach(
            found,
            upload.bucket,
            upload.upload_key,
            model,
            version_id,
            self.registry(),
            self.store,
            settings,
            deadline,
        )
        if (
            settings.deploy_endpoint
            and "default" in extra.get("aliases", ())
            and (extra.get("gate", {}).get("decision") == "promoted")
        ):  # late metrics made it the default: the canary the registration would have started
            from ..registry import deploy  # only with DEPLOY_ENDPOINT: the endpoint client

            note = deploy.start_canary(
                settings,
                self.store,
                bucket=upload.bucket,
                record=target.record_object,
                deadline=deadline,
                model=model,
                version_id=version_id,
                display_name=str(record.get("display_name", "")),
                serving_image=settings.serving_image,
            )
            if note is not None:
                extra["deployment"] = note

        def newest_wins(current: dict[str, Any]) -> dict[str, Any]:
            attached = current.get("metrics") or {}
            if (
                attached.get("origin") == "file"
                and int(attached.get("generation") or 0) > found.generation
            ):
                return current  # a newer metrics.json was attached meanwhile
            return {**current, **extra}

        self.records.update(
            upload.bucket,
            target.record_object,
            newest_wins,
            note=f"metrics attached ({found.source} generation {found.generation})",
        )
        shown = ("gate", "deployment")
        return {**result, "result": "attached", **{k: extra[k] for k in shown if k in extra}}

    def _targets(self, bucket: str, directory: str) -> tuple[list[_Target], bool]:
        """The model uploads a metrics.json in `directory` describes, each with its record (None:
        no event has reached it yet); and whether a SavedModel there is still incomplete."""
        store, settings = self.store, self.settings
        listed = uploads_in(store.list_objects(bucket, directory), settings).directly_in(directory)
        found = [
            artifacts.Upload("keras", bucket, obj.name, (obj,), _event_for(obj))
            for obj in listed.keras
        ]
        incomplete = bool(listed.incomplete)
        for root in listed.saved_models.values():
            member = SavedModelMember(root.name, (directory,))
            try:
                found.append(
                    artifacts.resolve_saved_model(
                        _event_for(root),
                        member,
                        store,
                        settings,
                        asset_names=self.validator().asset_names,
                    )
                )
            except (Waiting, Superseded):
                incomplete = True
            except Rejected:
                pass  # the directory itself is rejected: its record says so
        targets = []
        for upload in found:
            name = record_name(settings.state_prefix, upload.source_path, upload.record_key)
            targets.append(_Target(upload, name, self.records.read(bucket, name)))
        return targets, incomplete

    # -- fingerprint.pb ----------------------------------------------------------------------
    def fingerprint(
        self, upload: artifacts.Upload, registered: dict[str, Any], timings: dict[str, float]
    ) -> Outcome | None:
        """Check a late fingerprint.pb against the registered save's graph and index (in the
        sandbox: the hash is TensorFlow's). Of another save, the directory now mixes two saves:
        that new, mixed upload gets its own rejection record. None when it matches."""
        members = registered.get("members", {})
        wanted = {"fingerprint.pb": upload.trigger.generation}
        wanted |= {r: int(members[r]) for r in ("saved_model.pb", "variables/variables.index")
                   if r in members}  # fmt: skip
        record_object = record_name(
            self.settings.state_prefix,
            upload.source_path,
            f"late-fingerprint-g{upload.trigger.generation}",
        )
        pinned: dict[str, ObjectInfo | None] = {
            relative: self.store.get_object(upload.bucket, upload.source_path + relative, gen)
            for relative, gen in wanted.items()
        }
        files = {relative: obj for relative, obj in pinned.items() if obj is not None}
        if len(files) < len(pinned):  # a generation is gone: nothing to compare with
            return None
        with tempfile.TemporaryDirectory(prefix="registrar-", dir=self.settings.temp_dir) as tmp:
            root = Path(tmp) / "late"
            with timed(timings, "download"):
                fetch(self.store, files, root, upload.uri)
            try:
                with timed(timings, "validate"), self.validation_lock:
                    self.validator().check_late_fingerprint(root)
            except PermanentError as exc:
                return self._mixed(upload, registered, wanted, record_object, exc, timings)
        return None

    def _mixed(
        self,
        upload: artifacts.Upload,
        registered: dict[str, Any],
        wanted: dict[str, int],
        record_object: str,
        exc: PermanentError,
        timings: dict[str, float],
    ) -> Outcome:
        identity = {
            "source": upload.uri,
            "bucket": upload.bucket,
            "kind": "saved_model",
            "record": f"gs://{upload.bucket}/{record_object}",
            "members": dict(wanted),
            "registered_version": registered.get("version_name"),
        }
        with claimed(self.records, upload.bucket, record_object, identity) as held:
            if not isinstance(held, AlreadyFinal):
                reason = {"code": exc.code, "message": str(exc)}
                self.notifier.publish(held.finish({"state": "rejected", "reason": reason}))
        return Outcome(
            "rejected",
            f"{upload.uri}: fingerprint.pb arrived after the directory was registered "
            f"as {registered.get('version_name')} and belongs to another save: {exc}",
            {"source_uri": upload.uri, "reason": exc.code,
             "record": identity["record"], "timings": timings},
        )  # fmt: skip


def _event_for(obj: ObjectInfo) -> ObjectEvent:
    return ObjectEvent.for_object(obj, event_id=f"metrics-{obj.generation}")
