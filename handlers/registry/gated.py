"""Metrics and gated promotion: the gate as a registration stage.

For an upload (two calls from `Pipeline._register`):
* `prepare` — after the claim, before UploadModel: find the upload's metrics
  (handlers/intake/metrics.py) and, with PROMOTION_METRIC set, register the version without
  `default` and with the gate labels;
* `settle` — once the version exists: import the metrics as a `ModelEvaluation` (once per metrics
  source) and let the gate (handlers/registry/promotion.py) decide `default` / `challenger`. The
  returned sections (`metrics`, `gate`, `aliases`) go into the upload's record.

`attach` is `settle` for metrics that arrive after the version exists: the late-arrivals stage
(handlers/late/arrivals.py) calls it for a `metrics.json` written after its model was registered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from ..errors import PermanentError
from ..gcs.ledger import WAIT_SECONDS, Ledger
from ..gcs.objects import ObjectStore
from ..logs import get_logger
from ..model_metrics import Found, Metrics, MetricsProblem
from ..settings import Settings
from .evaluation import spec_for
from .interface import ModelRegistry, RegisteredVersion, VersionRequest
from .promotion import NO_METRICS, Candidate, Gate, Rule, gate_labels

_LOG = get_logger(__name__)


@dataclass(frozen=True)
class Prepared:
    request: VersionRequest
    found: Found
    rule: Rule | None


def prepare(found: Found, request: VersionRequest, settings: Settings) -> Prepared:
    """The version request as the gate wants it, given the upload's metrics (read by intake)."""
    rule = Rule.from_settings(settings)
    if rule is None:
        return Prepared(request, found, None)
    value = found.values.get(rule.metric) if isinstance(found, Metrics) else None
    labels = {**request.labels, **gate_labels(rule, value)}
    return Prepared(replace(request, labels=labels, make_default=False), found, rule)


def settle(
    prepared: Prepared,
    version: RegisteredVersion,
    *,
    bucket: str,
    upload_key: str,
    registry: ModelRegistry,
    store: ObjectStore,
    settings: Settings,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Evaluation and gate for a registered version; the record sections they produce.
    `bucket`: where the model's ledger lives; `upload_key`: the upload's identity (labels).
    `deadline` (monotonic): when the run's waits must end (the gate's lock wait among them)."""
    return attach(
        prepared.found,
        bucket,
        upload_key,
        version.model,
        version.version_id,
        registry,
        store,
        settings,
        deadline,
    )


def attach(
    found: Found,
    bucket: str,
    upload_key: str,
    model: str,
    version_id: str,
    registry: ModelRegistry,
    store: ObjectStore,
    settings: Settings,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Import `found` as the evaluation of model@version_id and run the gate on it."""
    version_name = f"{model}@{version_id}"
    extra: dict[str, Any] = {"metrics": _import(found, upload_key, version_name, registry)}
    rule = Rule.from_settings(settings)
    if rule is None:
        return extra
    candidate = _candidate(rule, found, model, version_id)
    wait = WAIT_SECONDS if deadline is None else min(WAIT_SECONDS, deadline - time.monotonic())
    ledger = Ledger(store, settings.state_prefix, wait_seconds=max(0.0, wait))
    gate = Gate(rule, registry, ledger, bucket)
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
    found: Found, upload_key: str, version_name: str, registry: ModelRegistry
) -> dict[str, Any]:
    if found is None:
        return {"state": "none"}
    if not isinstance(found, Metrics):
        return found.record()
    spec = spec_for(
        found.values,
        source=found.source,
        generation=found.generation,
        origin=found.origin,
        upload_key=upload_key,
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


def _candidate(rule: Rule, found: Found, model: str, version_id: str) -> Candidate:
    if found is None:
        why = "the upload has no metrics (no `metrics` metadata, no metrics.json beside it)"
        return Candidate(model, version_id, None, NO_METRICS, why)
    if isinstance(found, MetricsProblem):
        why = f"its metrics were {found.state} ({found.code})"
        return Candidate(model, version_id, None, found.key, why)
    value = found.values.get(rule.metric)
    why = (
        ""
        if value is not None
        else f"its metrics have no {rule.metric!r} ({', '.join(found.values)[:200]})"
    )
    return Candidate(model, version_id, value, found.key, why)
