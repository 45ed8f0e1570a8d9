"""Upload records against fake-gcs-server: claim, finish, release, takeover, and a lost reply."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from dev.gcs_faults import FaultProxy
from handlers.errors import TransientError
from handlers.gcs.objects import ObjectStore
from handlers.gcs.records import AlreadyFinal, Claim, Records, record_name
from tests.conftest import PROJECT, Bucket, Services, make_settings


@pytest.fixture
def proxy(services: Services) -> Iterator[FaultProxy]:
    proxy = FaultProxy(services.storage_url).start()
    yield proxy
    proxy.stop()


def _records(url: str, lease: int = 60) -> Records:
    store = ObjectStore(make_settings(project=PROJECT, storage_emulator_host=url))
    return Records(store, lease)


def _name() -> str:
    return record_name("registrar-state/", f"models/m/{uuid.uuid4().hex}.keras", "g1")


def test_first_claim_creates_the_record_and_a_second_is_told_to_come_back(bucket: Bucket) -> None:
    records = _records(bucket.storage_url)
    name = _name()
    claim = records.claim(bucket.name, name, {"source": "s"})
    assert isinstance(claim, Claim) and claim.record["state"] == "claimed"
    with pytest.raises(TransientError) as caught:
        _records(bucket.storage_url).claim(bucket.name, name, {"source": "s"})
    assert caught.value.code == "in_progress_elsewhere"


def test_finish_makes_later_claims_duplicates(bucket: Bucket) -> None:
    records = _records(bucket.storage_url)
    name = _name()
    claim = records.claim(bucket.name, name, {"source": "s"})
    assert isinstance(claim, Claim)
    written = records.finish(claim, {"state": "registered", "version_id": "3"})
    again = records.claim(bucket.name, name, {"source": "s"})
    assert isinstance(again, AlreadyFinal)
    assert again.record == written and again.record["version_id"] == "3"
    assert [h["state"] for h in again.record["history"]] == ["claimed", "registered"]
    assert "lease_expires_epoch" not in again.record


def test_release_lets_the_redelivery_claim_at_once(bucket: Bucket) -> None:
    records = _records(bucket.storage_url)
    name = _name()
    first = records.claim(bucket.name, name, {"source": "s"})
    assert isinstance(first, Claim)
    records.release(first, "TransientError: Vertex 503")
    second = records.claim(bucket.name, name, {"source": "s"})
    assert isinstance(second, Claim)
    assert second.record["attempts"] == 2
    assert [h["state"] for h in second.record["history"]] == ["claimed", "claimed"]
    assert records.read(bucket.name, name)["state"] == "claimed"


def test_an_expired_lease_is_taken_over(bucket: Bucket) -> None:
    name = _name()
    dead = _records(bucket.storage_url, lease=30)
    dead_claim = dead.claim(bucket.name, name, {"source": "s"})
    assert isinstance(dead_claim, Claim)
    # Age the lease as if the worker died long ago (the record is plain JSON in the bucket).
    record = {**dead_claim.record, "lease_expires_epoch": time.time() - 1}
    dead._write(bucket.name, name, record, if_generation_match=dead_claim.generation)
    live = _records(bucket.storage_url).claim(bucket.name, name, {"source": "s"})
    assert isinstance(live, Claim) and live.record["attempts"] == 2
    # The dead worker's finish now fails its precondition and cannot overwrite the live claim.
    with pytest.raises(TransientError, match="lost the claim"):
        dead.finish(dead_claim, {"state": "registered"})


def test_a_lost_reply_on_the_claim_write_keeps_our_own_claim(
    bucket: Bucket, proxy: FaultProxy
) -> None:
    """The create commits, its reply is lost, the client's retry fails ifGenerationMatch=0 against
    our own object: the token in the record tells it is ours, so no lease-long stall."""
    name = _name()
    proxy.lose_reply(method="POST", path_contains=f"/upload/storage/v1/b/{bucket.name}/o", times=1)
    records = _records(proxy.url)
    started = time.monotonic()
    claim = records.claim(bucket.name, name, {"source": "s"})
    assert len(proxy.lost) == 1, "the fault must have fired for this test to mean anything"
    assert isinstance(claim, Claim)
    stored = _records(bucket.storage_url).read(bucket.name, name)
    assert stored["claim_token"] == claim.record["claim_token"]
    assert records.finish(claim, {"state": "registered"})["state"] == "registered"
    assert time.monotonic() - started < 30  # far below the 60 s lease it used to wait for


def test_a_token_belongs_to_one_claim_attempt(bucket: Bucket) -> None:
    records = _records(bucket.storage_url)
    first = records.claim(bucket.name, _name(), {})
    second = records.claim(bucket.name, _name(), {})
    assert isinstance(first, Claim) and isinstance(second, Claim)
    assert first.record["claim_token"] != second.record["claim_token"]
