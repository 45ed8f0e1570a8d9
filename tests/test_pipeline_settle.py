"""The function process freezes what its imports leave (`gc.freeze`), so the cyclic collector's
full passes (~0.2 s over the Vertex SDK's ~280k objects) stop landing on random events: once the
SDK is imported, and once after the first event, not on every event."""

from __future__ import annotations

import gc

import pytest

from handlers import pipeline as pipeline_module
from handlers.pipeline import ModelEvent, Outcome, Pipeline
from handlers.settings import Settings


def _model_event(p: Pipeline) -> ModelEvent:
    attributes = {"id": "e-1", "type": "google.cloud.storage.object.v1.finalized", "source": "s"}
    data = {"bucket": "b", "name": "models/a/v1/model.keras", "generation": "7", "size": "10"}
    triaged = p.triage(attributes, data)
    assert isinstance(triaged, ModelEvent)
    return triaged


def test_the_first_event_and_the_sdk_import_settle_long_lived_objects_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(pipeline_module, "_settle_long_lived", lambda: calls.append("freeze"))
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "my-project"})
    p = Pipeline(settings, registry_factory=lambda: object())  # type: ignore[arg-type,return-value]
    monkeypatch.setattr(Pipeline, "handle_model", lambda self, e: Outcome("registered", "ok"))
    event = _model_event(p)
    for _ in range(3):
        assert p.handle_triaged(event).outcome == "registered"
    assert calls == ["freeze"]
    p._import_registry()
    assert calls == ["freeze", "freeze"]


def test_settling_freezes_what_is_alive_now() -> None:
    before = gc.get_freeze_count()
    try:
        pipeline_module._settle_long_lived()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()  # the test process' objects go back to the collector
