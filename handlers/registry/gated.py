"""Metrics and gated promotion, as the pipeline runs them.

For an upload (two calls from `Pipeline._register`):
* `prepare` — after the claim, before UploadModel: find the upload's metrics
  (handlers/intake/metrics.py) and, with PROMOTION_METRIC set, register the version without
  `default` and with the gate labels;
* `settle` — once the version exists: import the metrics as a `ModelEvaluation` (once per metrics
  source) and let the gate (handlers/registry/promotion.py) decide `default` / `challenger`. The
  returned sections (`metrics`, `gate`, `aliases`) go into the upload's record.

For a `metrics.json` event (`on_metrics_file`): the file's own record
(`{STATE_PREFIX}uploads/<dir>/metrics.json/g<generation>.json`) is its claim; it is attached to
every registered upload in its directory (the SavedModel rooted there, each `.keras` directly in
it): evaluation imported, gate decided then, the upload's record updated. An upload whose record
does not exist yet reads the file itself when it is registered (it is claimed before its metrics
are read), so the event only waits; one being registered right now makes the event ask for
redelivery. The newest generation of `metrics.json` wins: an older one (or a redelivery) changes
nothing, a newer one is imported and decided again. A model object's own `metrics` metadata
takes precedence over any `metrics.json`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from ..errors import PermanentError, Rejected, Superseded, TransientError, Waiting
from ..gcs.ledger import Ledger
from ..gcs.objects import ObjectInfo, ObjectStore
from ..gcs.records import FINAL_STATES, AlreadyFinal, Records, record_name
from ..intake import metrics as intake
from ..intake import uploads as artifacts
from ..intake.events import ObjectEvent
from ..intake.layout import SAVED_MODEL_GRAPHS, SavedModelMember
from ..logs import get_logger
from ..outcome import Outcome
from ..settings import Settings
from .evaluation import spec_for
from .interface import ModelRegistry, RegisteredVersion, VersionRequest
from .promotion import NO_METRICS, Candidate, Gate, Rule, gate_labels

_LOG = get_logger(__name__)
_SAVED_MODEL_ROOTS = SAVED_MODEL_GRAPHS


@dataclass(frozen=True)
class Prepared:
    request: VersionRequest
    found: intake.Found
    rule: Rule | None


def prepare(
    upload: artifacts.Upload, request: VersionRequest, store: ObjectStore, settings: Settings
) -> Prepared:
    """The upload's metrics, and the version request as the gate wants it."""
    found = intake.for_upload(upload, store, settings)
    rule = Rule.from_settings(settings)
    if rule is None:
        return Prepared(request, found, None)
    value = found.values.get(rule.metric) if isinstance(found, intake.Metrics) else None
    labels = {**request.labels, **gate_labels(rule, value)}
    return Prepared(replace(request, labels=labels, make_default=False), found, rule)


def settle(
    prepared: Prepared,
    upload: artifacts.Upload,
    version: RegisteredVersion,
    *,
    registry: ModelRegistry,
    store: ObjectStore,
    settings: Settings,
) -> dict[str, Any]:
    """Evaluation and gate for a registered version; the record sections they produce."""
    return _attach(
        prepared.found, upload, version.model, version.version_id, registry, store, settings
    )


def _attach(
    found: intake.Found,
    upload: artifacts.Upload,
    model: str,
    version_id: str,
    registry: ModelRegistry,
    store: ObjectStore,
    settings: Settings,
) -> dict[str, Any]:
    version_name = f"{model}@{version_id}"
    extra: dict[str, Any] = {"metrics": _import(found, upload, version_name, registry)}
    rule = Rule.from_settings(settings)
    if rule is None:
        return extra
    candidate = _candidate(rule, found, model, version_id)
    gate = Gate(rule, registry, Ledger(store, settings.state_prefix), upload.bucket)
    try:
        result = gate.run(candidate)
    except PermanentError as exc:  # e.g. Vertex refused an alias move: the version stays
        _LOG.error("gate for %s failed: %s", version_name, exc)
        extra["gate"] = {"decision": "error", "metric": rule.metric, "reason": str(exc)}
        return extra
    extra["gate"] = {**result.record(), "rule": rule.settings_record()}
    extra["aliases"] = list(result.aliases)
    return extra


def _import(
    found: intake.Found, upload: artifacts.Upload, version_name: str, registry: ModelRegistry
) -> dict[str, Any]:
    if found is None:
        return {"state": "none"}
    if not isinstance(found, intake.Metrics):
        return found.record()
    spec = spec_for(
        found.values,
        source=found.source,
        generation=found.generation,
        origin=found.origin,
        upload_key=upload.upload_key,
    )
    section = {**found.record(), "task": spec.task, "schema": spec.metrics_schema_uri}
    try:
        evaluation, _ = registry.ensure_evaluation(version_name, spec)
    except PermanentError as exc:  # Vertex refused the evaluation; the gate still has the values
        _LOG.error("importing the evaluation of %s failed: %s", version_name, exc)
        return {
            **section,
            "state": "not_imported",
            "reason": {"code": exc.code, "message": str(exc)},
        }
    return {**section, "evaluation": evaluation.name}


def _candidate(rule: Rule, found: intake.Found, model: str, version_id: str) -> Candidate:
    if found is None:
        why = "the upload has no metrics (no `metrics` metadata, no metrics.json beside it)"
        return Candidate(model, version_id, None, NO_METRICS, why)
    if isinstance(found, intake.MetricsProblem):
        why = f"its metrics were {found.state} ({found.code})"
        return Candidate(model, version_id, None, found.key, why)
    value = found.values.get(rule.metric)
    why = (
        ""
        if value is not None
        else f"its metrics have no {rule.metric!r} ({', '.join(found.values)[:200]})"
    )
    return Candidate(model, version_id, value, found.key, why)


# ---- a metrics.json event --------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    upload: artifacts.Upload
    record_object: str
    record: dict[str, Any] | None


def on_metrics_file(
    pipeline: Any, event: ObjectEvent, directory: str, base: dict[str, Any]
) -> tuple[Outcome, int]:
    """Handle one `metrics.json` finalize event (`pipeline`: the Pipeline, for its store, records,
    registry, settings and notifier). Returns the acknowledged outcome and its log level, or
    raises TransientError; the pipeline logs either, as for every event."""
    return _late_metrics(pipeline, event, directory, base)


def _late_metrics(
    pipeline: Any, event: ObjectEvent, directory: str, base: dict[str, Any]
) -> tuple[Outcome, int]:
    store: ObjectStore = pipeline.store
    records: Records = pipeline.records
    settings: Settings = pipeline.settings
    live = store.get_object(event.bucket, event.name)
    if live is None or live.generation != event.generation:
        why = "was deleted" if live is None else f"was replaced by generation {live.generation}"
        message = f"{event.uri} generation {event.generation} {why}, which has its own event"
        return Outcome("superseded", message, base), logging.INFO
    own_record = record_name(settings.state_prefix, event.name, f"g{event.generation}")
    existing = records.read(event.bucket, own_record)
    if existing is not None and existing.get("state") in FINAL_STATES:
        message = f"already {existing.get('state')}: duplicate delivery acknowledged"
        return Outcome("duplicate", message, {**base, "state": existing.get("state")}), logging.INFO
    try:
        found: intake.Metrics | intake.MetricsProblem = intake.read_file(live, store)
    except intake.MetricsRejected as exc:
        found = intake.MetricsProblem(
            "rejected", exc.code, str(exc), live.uri, live.generation, "file"
        )
    except Superseded as exc:
        return Outcome("superseded", str(exc), base), logging.INFO

    targets, incomplete = _uploads_in(
        event.bucket, directory, store, records, settings, pipeline.validator.asset_names
    )
    if isinstance(found, intake.Metrics):
        busy = [
            t.upload.uri for t in targets if t.record and t.record.get("state") not in FINAL_STATES
        ]
        if busy:
            raise TransientError(
                f"{', '.join(busy)} is being registered right now; these metrics are attached "
                "after it finishes",
                code="in_progress_elsewhere",
            )
        registered = [t for t in targets if t.record and t.record.get("state") == "registered"]
        if not registered:
            pending = incomplete or not targets or any(t.record is None for t in targets)
            if pending:
                message = (
                    f"no registered model in gs://{event.bucket}/{directory} yet; its registration "
                    f"reads {event.uri}"
                )
                return Outcome("waiting", message, base), logging.INFO
            message = (
                f"no registered model upload in gs://{event.bucket}/{directory} to attach it to"
            )
            return Outcome("ignored", message, base), logging.INFO
    else:
        registered = []

    identity = {
        "source": event.uri,
        "bucket": event.bucket,
        "kind": "metrics",
        "record": f"gs://{event.bucket}/{own_record}",
        "members": {intake.METRICS_FILE: event.generation},
    }
    claim = records.claim(event.bucket, own_record, identity)
    if isinstance(claim, AlreadyFinal):
        state = claim.record.get("state")
        return Outcome(
            "duplicate", f"already {state}: duplicate delivery acknowledged", base
        ), logging.INFO
    try:
        if isinstance(found, intake.MetricsProblem):
            record = records.finish(
                claim,
                {"state": "rejected", "reason": {"code": found.code, "message": found.message}},
            )
            pipeline.notifier.publish(record)
            fields = {**base, "reason": found.code, "record": identity["record"]}
            message = (
                f"metrics rejected (the models they describe are not affected): {found.message}"
            )
            return Outcome("rejected", message, fields), logging.ERROR
        results = [_attach_late(found, target, pipeline) for target in registered]
    except Exception as exc:
        records.release(claim, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, TransientError):
            raise
        raise TransientError(f"unexpected failure: {type(exc).__name__}: {exc}") from exc
    versions = [r["version"] for r in results if r["result"] in ("attached", "duplicate")]
    record = records.finish(
        claim,
        {
            "state": "attached",
            "values": found.values,
            "uploads": results,
            **({"version_name": versions[0]} if len(versions) == 1 else {}),
        },
    )
    pipeline.notifier.publish(record)
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


def _attach_late(found: intake.Metrics, target: _Target, pipeline: Any) -> dict[str, Any]:
    settings: Settings = pipeline.settings
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
    extra = _attach(found, upload, model, version_id, pipeline.registry, pipeline.store, settings)
    if (
        settings.deploy_endpoint
        and "default" in extra.get("aliases", ())
        and (extra.get("gate", {}).get("decision") == "promoted")
    ):  # late metrics made it the default: the canary the registration would have started
        from . import deploy

        note = deploy.start_canary(
            settings,
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

    pipeline.records.update(
        upload.bucket,
        target.record_object,
        newest_wins,
        note=f"metrics attached ({found.source} generation {found.generation})",
    )
    shown = ("gate", "deployment")
    return {**result, "result": "attached", **{k: extra[k] for k in shown if k in extra}}


def _uploads_in(
    bucket: str,
    directory: str,
    store: ObjectStore,
    records: Records,
    settings: Settings,
    asset_names: artifacts.AssetNames,
) -> tuple[list[_Target], bool]:
    """The model uploads a metrics.json in `directory` describes, each with its record (None: no
    event has reached it yet); and whether a SavedModel there is still incomplete."""
    children = [
        o for o in store.list_objects(bucket, directory) if "/" not in o.name[len(directory) :]
    ]
    found: list[artifacts.Upload] = []
    incomplete = False
    for obj in children:
        relative = obj.name[len(directory) :]
        if relative.lower().endswith(".keras"):
            trigger = _event_for(obj)
            found.append(artifacts.Upload("keras", bucket, obj.name, (obj,), trigger))
    roots = [o for o in children if o.name[len(directory) :] in _SAVED_MODEL_ROOTS]
    if roots:
        root = min(roots, key=lambda o: _SAVED_MODEL_ROOTS.index(o.name[len(directory) :]))
        member = SavedModelMember(root.name, (directory,))
        try:
            found.append(
                artifacts.resolve_saved_model(
                    _event_for(root), member, store, settings, asset_names=asset_names
                )
            )
        except (Waiting, Superseded):
            incomplete = True
        except Rejected:
            pass  # the directory itself is rejected: its record says so
    targets = []
    for upload in found:
        name = record_name(settings.state_prefix, upload.source_path, upload.record_key)
        targets.append(_Target(upload, name, records.read(bucket, name)))
    return targets, incomplete


def _event_for(obj: ObjectInfo) -> ObjectEvent:
    return ObjectEvent.for_object(obj, event_id=f"metrics-{obj.generation}")
