"""The Vertex emulator in-process, one per test module, reset before each test that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from emulators.vertex import AdminClient, start_in_thread
from tests.conftest import EMULATOR_TODAY


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    server, url = start_in_thread(port=0, today=date.fromisoformat(EMULATOR_TODAY))
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def admin(emulator_url: str) -> AdminClient:
    handle = AdminClient(emulator_url)
    handle.reset()
    return handle
