"""`claimed`: the one claim -> finish / release -> redelivery wrapper of every flow."""

from __future__ import annotations

import uuid

import pytest

from handlers.errors import TransientError
from handlers.gcs.objects import ObjectStore
from handlers.gcs.records import AlreadyFinal, Held, Records, claimed, record_name
from handlers.settings import Settings
from tests.conftest import PROJECT, Bucket


class _StillRunning(TransientError):
    """Stands in for an operation that may still create something (OperationPending)."""


def _records(bucket: Bucket) -> Records:
    store = ObjectStore(Settings(project=PROJECT, storage_emulator_host=bucket.storage_url))
    return Records(store, 900)


def _name() -> str:
    return record_name("registrar-state/", f"models/m/{uuid.uuid4().hex}.keras", "g1")


def test_a_finished_claim_is_final_and_a_later_claim_gets_already_final(bucket: Bucket) -> None:
    records, name = _records(bucket), _name()
    timings: dict[str, float] = {}
    with claimed(records, bucket.name, name, {"source": "s"}, timings=timings) as held:
        assert isinstance(held, Held)
        held.finish({"state": "registered"})
    assert "claim" in timings
    with claimed(records, bucket.name, name, {"source": "s"}) as again:
        assert isinstance(again, AlreadyFinal) and again.record["state"] == "registered"


def test_an_unexpected_failure_gives_the_claim_back_and_asks_for_redelivery(
    bucket: Bucket,
) -> None:
    records, name = _records(bucket), _name()
    with pytest.raises(TransientError, match="unexpected failure: KeyError") as caught:
        with claimed(records, bucket.name, name, {"source": "s"}):
            raise KeyError("boom")
    assert isinstance(caught.value.__cause__, KeyError)
    record = records.read(bucket.name, name)
    assert record is not None and record["state"] == "retrying"
    assert "KeyError" in record["last_error"]
    with claimed(records, bucket.name, name, {"source": "s"}) as held:  # at once: no lease wait
        assert isinstance(held, Held)
        held.finish({"state": "rejected"})


def test_a_transient_failure_passes_unchanged_after_the_release(bucket: Bucket) -> None:
    records, name = _records(bucket), _name()
    failure = TransientError("503 from somewhere", code="vertex_unavailable")
    with pytest.raises(TransientError) as caught:
        with claimed(records, bucket.name, name, {"source": "s"}):
            raise failure
    assert caught.value is failure
    assert (records.read(bucket.name, name) or {})["state"] == "retrying"


def test_a_kept_failure_keeps_the_claim(bucket: Bucket) -> None:
    records, name = _records(bucket), _name()
    with pytest.raises(_StillRunning):
        with claimed(records, bucket.name, name, {"source": "s"}, keep=(_StillRunning,)):
            raise _StillRunning("operation still running")
    assert (records.read(bucket.name, name) or {})["state"] == "claimed"


def test_a_failure_after_the_final_record_leaves_the_record_final(bucket: Bucket) -> None:
    records, name = _records(bucket), _name()
    with pytest.raises(TransientError, match="unexpected failure"):
        with claimed(records, bucket.name, name, {"source": "s"}) as held:
            assert isinstance(held, Held)
            held.finish({"state": "registered"})
            raise RuntimeError("the notification failed")
    assert (records.read(bucket.name, name) or {})["state"] == "registered"


def test_a_body_that_settles_nothing_gives_the_claim_back(bucket: Bucket) -> None:
    records, name = _records(bucket), _name()
    with claimed(records, bucket.name, name, {"source": "s"}):
        pass
    assert (records.read(bucket.name, name) or {})["state"] == "retrying"
