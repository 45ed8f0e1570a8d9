"""Vertex's quota of 60 long-running-operation submissions per minute per project and region.

Source: cloud.google.com/vertex-ai/docs/quotas ("Job or long-running operation (LRO) submission
requests: 60" requests per minute, per project and supported region). Off unless enabled.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions as api

from emulators.vertex import AdminClient, EmulatorServer, quota, start_in_thread
from tests.emulators.conftest import TODAY
from tests.emulators.helpers import PROJECT, name, upload

ROOT = Path(__file__).resolve().parents[2]
EUROPE = f"projects/{PROJECT}/locations/europe-west4"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(url: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(
        transport="rest", client_options={"api_endpoint": url}, credentials=AnonymousCredentials()
    )


@pytest.fixture
def limited() -> Iterator[tuple[EmulatorServer, str, FakeClock]]:
    clock = FakeClock()
    server, url = start_in_thread(quota_per_minute=60, quota_clock=clock, today=TODAY)
    try:
        yield server, url, clock
    finally:
        server.shutdown()
        server.server_close()


def test_the_61st_submission_in_a_minute_is_refused(
    limited: tuple[EmulatorServer, str, FakeClock],
) -> None:
    _, url, clock = limited
    gapic = _client(url)
    for i in range(60):
        upload(gapic, model_id=f"m{i}")
        clock.now += 0.5  # 60 submissions within 30 s
    with pytest.raises(api.TooManyRequests) as caught:
        upload(gapic, model_id="m60")
    error = caught.value
    assert error.response.status_code == 429
    body = error.response.json()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert "Quota exceeded" in body["message"]
    assert error.reason == "RATE_LIMIT_EXCEEDED"  # api_core reads google.rpc.ErrorInfo
    assert error.domain == "googleapis.com"
    assert error.metadata["quota_location"] == "us-central1"
    assert error.metadata["quota_limit_value"] == "60"
    with pytest.raises(api.NotFound):
        gapic.get_model(name=name("m60"))  # the refused upload did nothing

    # reads are not LRO submissions; another region has its own quota
    assert gapic.get_model(name=name("m0")).version_id == "1"
    assert upload(gapic, model_id="eu", parent=EUROPE).model.endswith("/models/eu")

    clock.now += 30.0  # the first submission is now 60 s old: one slot frees up
    assert upload(gapic, model_id="m60").model == name("m60")
    with pytest.raises(api.TooManyRequests):
        upload(gapic, model_id="m61")


def test_deletions_are_submissions_too(limited: tuple[EmulatorServer, str, FakeClock]) -> None:
    server, url, _ = limited
    gapic = _client(url)
    AdminClient(url).config(quota_per_minute=3)
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model)
    gapic.delete_model_version(name=f"{first.model}@2", timeout=10).result(timeout=10)
    with pytest.raises(api.TooManyRequests):
        gapic.delete_model(name=first.model, timeout=10).result(timeout=10)
    assert server.quota.snapshot()["quota_used"] == {f"{PROJECT}/us-central1": 3}


def test_sdk_upload_over_quota_raises(aip: Any, admin: AdminClient) -> None:
    assert admin.config(quota_per_minute=1)["quota_per_minute"] == 1
    aip.Model.upload(display_name="a", serving_container_image_uri="x-docker.pkg.dev/p/r/i:1")
    with pytest.raises(api.TooManyRequests, match="Quota exceeded"):
        aip.Model.upload(display_name="b", serving_container_image_uri="x-docker.pkg.dev/p/r/i:1")


def test_off_by_default_and_set_through_the_admin_path(gapic: Any, admin: AdminClient) -> None:
    assert admin.state()["quota_per_minute"] is None
    for i in range(61):
        upload(gapic, model_id=f"m{i}")
    assert admin.config(quota_per_minute=1)["quota_per_minute"] == 1
    upload(gapic, model_id="m61")  # nothing was counted while the quota was off
    with pytest.raises(api.TooManyRequests):
        upload(gapic, model_id="m62")
    admin.reset()  # usage forgotten, rate back to the startup value (off)
    assert admin.state()["quota_per_minute"] is None
    upload(gapic, model_id="m62")
    with pytest.raises(urllib.error.HTTPError) as caught:
        admin.config(quota_per_minute=-1)
    assert caught.value.code == 400


def test_standalone_takes_the_flag() -> None:
    args = [sys.executable, "-m", "emulators.vertex", "--port", "0", "--quota-per-minute", "1"]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        assert AdminClient(url).state()["quota_per_minute"] == 1
        gapic = _client(url)
        upload(gapic, model_id="a")
        with pytest.raises(api.TooManyRequests):
            upload(gapic, model_id="b")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_read_out_shows_admitted_times_refusals_and_the_busiest_window(
    limited: tuple[EmulatorServer, str, FakeClock],
) -> None:
    """What a test needs to judge a client's pacing: when each submission was admitted, how many
    were refused, and the most admitted in any 60 s (as the quota counts them)."""
    _, url, clock = limited
    gapic, admin = _client(url), AdminClient(url)
    admin.config(quota_per_minute=3)
    key = f"{PROJECT}/us-central1"
    for i in range(3):
        upload(gapic, model_id=f"m{i}")
        clock.now += 10.0
    with pytest.raises(api.TooManyRequests):
        upload(gapic, model_id="refused")  # t=1030: 3 admitted in the last 60 s
    clock.now = 1060.0  # the first has left the window (exactly 60 s old)
    upload(gapic, model_id="m3")
    gapic.get_model(name=name("m0"))  # a read: not a submission

    usage = admin.quota()
    assert usage["quota_per_minute"] == 3 and usage["window_seconds"] == 60.0
    assert usage["accepted"] == {key: [1000.0, 1010.0, 1020.0, 1060.0]}
    assert usage["refused"] == {key: 1}
    assert usage["peak"] == {key: 3}
    admin.reset()
    assert admin.quota()["accepted"] == {} and admin.quota()["refused"] == {}


def test_peak_counts_a_window_as_admit_does() -> None:
    assert quota.peak([]) == 0
    assert quota.peak([0.0, 59.9, 60.0]) == 2  # 0.0 is 60 s old at 60.0: it has left
    assert quota.peak([5.0, 0.0, 30.0, 59.0, 61.0]) == 4  # order of arrival does not matter
