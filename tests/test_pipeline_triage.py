"""`Pipeline.triage`: the part of event handling the ASGI server runs on its event loop. It must
settle every non-model event without I/O and hand every model event on, untouched."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.intake.layout import KerasFile, SavedModelMember
from handlers.pipeline import ModelEvent, Outcome, Pipeline
from handlers.settings import Settings


class _NoIO:
    """Any attribute access means I/O was attempted on the event loop."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"triage touched storage: {name}")


def _pipeline() -> Pipeline:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "my-project"})
    boom = lambda: (_ for _ in ()).throw(AssertionError("triage built a client"))  # noqa: E731
    return Pipeline(settings, store=_NoIO(), registry_factory=boom, validator_factory=boom)  # type: ignore[arg-type]


def _event(name: str, event_type: str = "google.cloud.storage.object.v1.finalized") -> tuple:
    attributes = {"id": "e-1", "type": event_type, "source": "//storage.googleapis.com/b"}
    return attributes, {"bucket": "b", "name": name, "generation": "7", "size": "10"}


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        (_event("logs/app.log"), "ignored"),
        (_event("models/team/README.md"), "ignored"),
        (_event("models/team/"), "ignored"),
        (_event("models/a/v1/model.keras", "google.cloud.storage.object.v1.deleted"), "ignored"),
        (
            ({"id": "e-2", "type": "google.cloud.storage.object.v1.finalized"}, {"name": "x"}),
            "malformed",
        ),
        (
            ({"id": "e-3", "type": "google.cloud.storage.object.v1.finalized"}, "not json"),
            "malformed",
        ),
    ],
)
def test_non_model_events_are_settled_without_io(event: tuple, outcome: str) -> None:
    settled = _pipeline().triage(*event)
    assert isinstance(settled, Outcome)
    assert settled.outcome == outcome


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("models/a/v1/model.keras", KerasFile),
        ("models/b/v2/saved_model.pb", SavedModelMember),
        ("models/b/v2/variables/variables.index", SavedModelMember),
    ],
)
def test_model_events_are_handed_on_for_the_io_part(name: str, kind: type) -> None:
    triaged = _pipeline().triage(*_event(name))
    assert isinstance(triaged, ModelEvent)
    assert isinstance(triaged.artifact, kind)
    assert triaged.event.name == name and triaged.event.generation == 7
