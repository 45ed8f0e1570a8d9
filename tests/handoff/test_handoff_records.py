"""The record rules a hand-off adds (handlers/gcs/records.py), on fake-gcs-server, and the
function's answer when no job is configured."""

from __future__ import annotations

import dataclasses
import time

from dev.bridge import binary_event
from handlers.gcs.objects import ObjectStore
from handlers.gcs.records import AlreadyFinal, Claim, Records
from handlers.pipeline import Pipeline
from handlers.settings import Settings
from tests.conftest import Bucket, Models, Services, Vertex, function_env

NAME = "registrar-state/uploads/models/x/model.keras/g1.json"


def _records(services: Services) -> Records:
    return Records(ObjectStore(Settings.from_env(function_env(services))), 900)


def _handed_off(records: Records, bucket: str, token: str, expires_in: float) -> None:
    claim = records.claim(bucket, NAME, {"source": "gs://b/models/x/model.keras"})
    assert isinstance(claim, Claim)
    expires = time.time() + expires_in
    records.finish(claim, {"state": "handed_off", "handoff": {"token": token,
                                                              "expires_epoch": expires}})  # fmt: skip


def test_a_live_hand_off_is_settled_for_everyone_but_its_token(
    services: Services, bucket: Bucket
) -> None:
    records = _records(services)
    _handed_off(records, bucket.name, "tok", expires_in=600)
    assert isinstance(records.claim(bucket.name, NAME, {}), AlreadyFinal)  # a redelivery
    assert isinstance(records.claim(bucket.name, NAME, {}, holder="other#e1"), AlreadyFinal)
    taken = records.claim(bucket.name, NAME, {}, holder="tok#e1")
    assert isinstance(taken, Claim) and taken.record["holder"] == "tok#e1"


def test_the_next_attempt_of_the_same_task_takes_a_dead_attempts_live_claim(
    services: Services, bucket: Bucket
) -> None:
    records = _records(services)
    _handed_off(records, bucket.name, "tok", expires_in=600)
    first = records.claim(bucket.name, NAME, {}, holder="tok#e1")
    assert isinstance(first, Claim)  # ... and this attempt dies, its lease unexpired
    second = records.claim(bucket.name, NAME, {}, holder="tok#e1")
    assert isinstance(second, Claim) and second.record["attempts"] == first.record["attempts"] + 1
    # Anyone else still sees a live claim.
    try:
        records.claim(bucket.name, NAME, {})
    except Exception as exc:  # noqa: BLE001
        assert getattr(exc, "code", "") == "in_progress_elsewhere"
    else:
        raise AssertionError("a live job claim was taken over")


def test_an_expired_hand_off_is_taken_over_so_a_lost_execution_is_retried(
    services: Services, bucket: Bucket
) -> None:
    records = _records(services)
    _handed_off(records, bucket.name, "tok", expires_in=-1)
    assert isinstance(records.claim(bucket.name, NAME, {}), Claim)


def test_without_a_job_an_upload_over_the_threshold_is_rejected_naming_job_name(
    services: Services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    settings = dataclasses.replace(Settings.from_env(function_env(services)), handoff_bytes=1024)
    resource = bucket.upload(models.keras_a, "models/nojob/v1/model.keras")
    headers, body = binary_event(resource)
    outcome = Pipeline(settings, hand_off=True).handle(
        {"type": headers["ce-type"], "id": headers["ce-id"]}, body
    )
    assert outcome.outcome == "rejected" and outcome.fields["reason"] == "too_large_for_function"
    assert "JOB_NAME" in outcome.message
    record = bucket.read_json(
        f"registrar-state/uploads/models/nojob/v1/model.keras/g{resource['generation']}.json"
    )
    assert record["state"] == "rejected" and "JOB_NAME" in record["reason"]["message"]
    assert vertex.models() == []
