"""A late `metrics.json` event logs its outcome like any other event: one summary line, from the
pipeline's own `_done` / `_retrying`, and a transient failure is re-raised (redelivery)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from handlers.errors import PermissionDenied
from handlers.intake.events import ObjectEvent
from handlers.intake.layout import MetricsFile
from handlers.pipeline import MetricsEvent, Pipeline
from handlers.settings import Settings


class _Forbidden:
    def get_object(self, bucket: str, name: str) -> Any:
        raise PermissionDenied(
            "no storage.objects.get", permission="storage.objects.get", resource=f"gs://{bucket}"
        )


def test_a_permission_failure_names_the_permission_and_is_redelivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "my-project"})
    pipeline = Pipeline(settings, store=_Forbidden())  # type: ignore[arg-type]
    event = ObjectEvent(bucket="b", name="models/a/v1/metrics.json", generation=7, event_id="e-1")
    artifact = MetricsFile(
        reason="metrics", name="models/a/v1/metrics.json", directory="models/a/v1/"
    )
    with caplog.at_level(logging.INFO), pytest.raises(PermissionDenied):
        pipeline.handle_metrics(MetricsEvent(event, artifact, 0.0))
    (line,) = [r for r in caplog.records if r.getMessage().startswith(event.uri)]
    assert line.levelno == logging.ERROR and "asking for redelivery" in line.getMessage()
    fields = line.json_fields  # type: ignore[attr-defined]
    assert fields["outcome"] == "failed" and fields["reason"] == "permission_denied"
    assert fields["missing_permission"] == "storage.objects.get"
    assert fields["event_id"] == "e-1" and fields["generation"] == 7
