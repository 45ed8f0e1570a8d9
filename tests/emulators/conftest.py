"""SDK clients pointed at the session's in-thread Vertex emulator (tests/conftest.py: `emulator_url`,
reset before each test by `admin`), and a per-test deadline."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import date
from types import FrameType
from typing import Any

import pytest

from emulators.vertex import AdminClient

PROJECT = "emu-project"
LOCATION = "us-central1"
TODAY = date(2026, 12, 7)
TEST_TIMEOUT_S = 60  # the SDK retries UNAVAILABLE for 120 s; fail long before that


@pytest.fixture
def base_url(admin: AdminClient) -> str:
    return admin.url


@pytest.fixture
def aip(base_url: str) -> Any:
    """`google.cloud.aiplatform`, initialised against the emulator over REST."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    aiplatform.init(
        project=PROJECT,
        location=LOCATION,
        api_endpoint=base_url,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    return aiplatform


@pytest.fixture
def gapic(base_url: str) -> Any:
    """`aiplatform_v1.ModelServiceClient` over REST against the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(
        transport="rest",
        client_options={"api_endpoint": base_url},
        credentials=AnonymousCredentials(),
    )


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[None]:
    def _expired(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT_S}s (is the SDK retrying a dead port?)")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(TEST_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
