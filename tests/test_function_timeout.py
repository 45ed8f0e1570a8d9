"""FUNCTION_TIMEOUT_SECONDS: validated at start-up, and the run's waits end inside it."""

from __future__ import annotations

import pytest

from handlers.errors import SettingsError
from handlers.pipeline import run_deadline
from handlers.settings import Settings

BASE = {"GOOGLE_CLOUD_PROJECT": "my-project"}


def test_the_default_is_the_event_driven_maximum() -> None:
    assert Settings.from_env(BASE).function_timeout_seconds == 540


@pytest.mark.parametrize("raw", ["soon", "59", "541", "0"])
def test_a_timeout_outside_the_platform_range_is_refused_by_name(raw: str) -> None:
    with pytest.raises(SettingsError, match="FUNCTION_TIMEOUT_SECONDS"):
        Settings.from_env({**BASE, "FUNCTION_TIMEOUT_SECONDS": raw})


def test_a_claim_lease_that_does_not_outlive_the_run_stops_start_up() -> None:
    env = {**BASE, "FUNCTION_TIMEOUT_SECONDS": "400", "CLAIM_LEASE_SECONDS": "400"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert "CLAIM_LEASE_SECONDS=400" in str(caught.value)
    assert "FUNCTION_TIMEOUT_SECONDS=400" in str(caught.value)
    assert Settings.from_env({**env, "CLAIM_LEASE_SECONDS": "401"}).claim_lease_seconds == 401


def test_a_validation_timeout_that_does_not_fit_the_run_stops_start_up() -> None:
    env = {**BASE, "FUNCTION_TIMEOUT_SECONDS": "120"}  # the default validation timeout is 300
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert "VALIDATION_TIMEOUT_SECONDS=300" in str(caught.value)
    assert "FUNCTION_TIMEOUT_SECONDS=120" in str(caught.value)
    fits = Settings.from_env({**env, "VALIDATION_TIMEOUT_SECONDS": "100"})
    assert fits.validation_timeout_seconds == 100


@pytest.mark.parametrize("limit", [60, 120, 540])
def test_waits_end_before_the_run_limit_with_time_to_record(limit: int) -> None:
    settings = Settings.from_env(
        {**BASE, "FUNCTION_TIMEOUT_SECONDS": str(limit), "VALIDATION_TIMEOUT_SECONDS": "30"}
    )
    deadline = run_deadline(settings, 1000.0)
    assert 1000.0 < deadline < 1000.0 + limit
    assert 1000.0 + limit - deadline >= min(60, limit / 6)  # the margin to write the record


@pytest.mark.parametrize(("limit", "expected"), [(540, 60.0), (360, 60.0), (120, 20.0), (60, 10.0)])
def test_one_vertex_call_never_outlasts_a_short_run(limit: int, expected: float) -> None:
    from handlers.registry.vertex import make_registry, rpc_timeout

    settings = Settings.from_env(
        {**BASE, "FUNCTION_TIMEOUT_SECONDS": str(limit), "VALIDATION_TIMEOUT_SECONDS": "30",
         "VERTEX_AI_EMULATOR_HOST": "http://127.0.0.1:9"}
    )  # fmt: skip
    assert rpc_timeout(settings) == expected
    assert make_registry(settings)._rpc_timeout == expected
