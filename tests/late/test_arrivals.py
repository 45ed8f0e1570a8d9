"""The late-arrivals stage: routed from triage, run with its collaborators, never the Pipeline."""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any, get_type_hints

from handlers.gcs.objects import ObjectStore
from handlers.gcs.records import Records
from handlers.intake.events import ObjectEvent
from handlers.late import arrivals
from handlers.late.arrivals import LateArrivals
from handlers.notify import Notifier
from handlers.pipeline import MetricsEvent, ModelEvent, Pipeline
from handlers.settings import Settings
from tests.conftest import PROJECT, Bucket


def _never() -> Any:
    raise AssertionError("this flow must not need it")


def _stage(bucket: Bucket, published: list[dict[str, Any]]) -> LateArrivals:
    settings = Settings(project=PROJECT, storage_emulator_host=bucket.storage_url)
    store = ObjectStore(settings)

    class Recorder(Notifier):
        def publish(self, record: dict[str, Any]) -> None:
            published.append(record)

    return LateArrivals(
        settings=settings,
        store=store,
        records=Records(store, settings.claim_lease_seconds),
        registry=_never,
        validator=_never,
        notifier=Recorder(None),
        validation_lock=threading.Lock(),
    )


def _event(bucket: Bucket, resource: dict[str, Any]) -> ObjectEvent:
    return ObjectEvent(bucket.name, resource["name"], int(resource["generation"]), event_id="e-1")


def test_its_collaborators_are_explicit_and_none_is_the_pipeline() -> None:
    fields = {f.name for f in dataclasses.fields(LateArrivals)}
    assert fields == {
        "settings", "store", "records", "registry", "validator", "notifier", "validation_lock"
    }  # fmt: skip
    hints = get_type_hints(LateArrivals, vars(arrivals))
    assert all(hint is not Any and hint is not Pipeline for hint in hints.values())


def test_triage_routes_metrics_json_to_the_stage_and_models_to_handle_model() -> None:
    pipeline = Pipeline(Settings(project=PROJECT), store=_never)  # type: ignore[arg-type]

    def triage(name: str) -> Any:
        data = {"bucket": "b", "name": name, "generation": "7"}
        attributes = {"id": "e-1", "type": "google.cloud.storage.object.v1.finalized"}
        return pipeline.triage(attributes, data)

    assert isinstance(triage("models/a/v1/metrics.json"), MetricsEvent)
    assert isinstance(triage("models/a/v1/model.keras"), ModelEvent)


def test_a_metrics_json_before_its_model_waits_and_claims_nothing(bucket: Bucket) -> None:
    published: list[dict[str, Any]] = []
    stage = _stage(bucket, published)
    resource = bucket.upload_bytes(b'{"auc": 0.9}', "models/a/v1/metrics.json")
    outcome, level = stage.metrics_file(_event(bucket, resource), "models/a/v1/", {}, 1e12)
    assert (outcome.outcome, level) == ("waiting", logging.INFO)
    assert bucket.names("registrar-state/") == [] and published == []


def test_a_bad_metrics_json_gets_one_rejection_record_then_duplicates(bucket: Bucket) -> None:
    published: list[dict[str, Any]] = []
    stage = _stage(bucket, published)
    resource = bucket.upload_bytes(b'{"auc": NaN}', "models/a/v1/metrics.json")
    event = _event(bucket, resource)
    outcome, level = stage.metrics_file(event, "models/a/v1/", {}, 1e12)
    assert (outcome.outcome, level) == ("rejected", logging.ERROR)
    assert outcome.fields["reason"] == "metrics.not_finite"
    [name] = bucket.names("registrar-state/uploads/models/a/v1/metrics.json/")
    record = bucket.read_json(name)
    assert record["state"] == "rejected" and record["reason"]["code"] == "metrics.not_finite"
    assert [r["state"] for r in published] == ["rejected"]
    again, _ = stage.metrics_file(event, "models/a/v1/", {}, 1e12)
    assert again.outcome == "duplicate" and len(published) == 1


def test_an_event_for_a_replaced_metrics_json_is_superseded(bucket: Bucket) -> None:
    stage = _stage(bucket, [])
    resource = bucket.upload_bytes(b'{"auc": 0.9}', "models/a/v1/metrics.json")
    old = ObjectEvent(bucket.name, resource["name"], int(resource["generation"]) - 1, "e-0")
    outcome, _ = stage.metrics_file(old, "models/a/v1/", {}, 1e12)
    assert outcome.outcome == "superseded"
