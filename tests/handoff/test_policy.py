"""When an upload goes to the job, and the threshold's default (the documented formula)."""

from __future__ import annotations

import dataclasses

import pytest

from handlers.errors import SettingsError
from handlers.handoff import policy
from handlers.settings import Settings

GIB = 1 << 30


def _settings(**env: str) -> Settings:
    return Settings.from_env({"GOOGLE_CLOUD_PROJECT": "proj-one", **env})


@pytest.mark.parametrize(
    ("memory_gib", "documented_gb"),
    [(4, 1.66), (8, 3.71), (16, 7.80), (32, 15.98)],  # README, "What each size takes"
)
def test_default_threshold_is_what_the_instance_holds_at_the_measured_peak(
    memory_gib: int, documented_gb: float
) -> None:
    # peak = 2.0 x upload above an idle 0.75 GiB, +5%  =>  largest = (memory - 0.75 GiB) / 2.1
    threshold = policy.default_handoff_bytes(memory_gib * GIB)
    assert threshold == int((memory_gib - 0.75) * GIB / 2.1)
    assert round(threshold / 1e9, 2) == documented_gb


def test_an_upload_at_the_threshold_goes_to_the_job_and_one_below_does_not() -> None:
    settings = _settings(HANDOFF_BYTES="1000")
    assert policy.needs_job(1000, settings, 500.0).code == "too_large_for_function"
    assert policy.needs_job(999, settings, 500.0) is None


def test_an_upload_that_cannot_finish_before_the_deadline_goes_to_the_job() -> None:
    settings = _settings(HANDOFF_BYTES=str(20 * 10**9))
    why = policy.needs_job(5 * 10**9, settings, seconds_left=60.0)
    assert why is not None and why.code == "too_slow_for_function"
    assert "FUNCTION_TIMEOUT_SECONDS" in why.message


def test_the_rejection_without_a_job_names_the_setting_to_turn_on() -> None:
    why = policy.needs_job(10, _settings(HANDOFF_BYTES="1"), 500.0)
    assert "JOB_NAME" in policy.no_job("gs://b/models/x.keras", why)


def test_settings_are_validated_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="HANDOFF_BYTES"):
        _settings(HANDOFF_BYTES="0")
    with pytest.raises(SettingsError, match="JOB_NAME"):
        _settings(JOB_NAME="Not_A_Job")
    with pytest.raises(SettingsError, match="HANDOFF_LEASE_SECONDS"):
        _settings(JOB_TIMEOUT_SECONDS="7200", HANDOFF_LEASE_SECONDS="3600")
    full = "projects/proj-one/locations/europe-west4/jobs/registrar"
    assert _settings(JOB_NAME=full).job_name == full


def test_the_job_runs_with_the_job_limits_not_the_function_limits() -> None:
    from handlers.job import job_settings

    settings = dataclasses.replace(_settings(), job_timeout_seconds=7200)
    limited = job_settings(settings)
    assert limited.function_timeout_seconds == 7200  # the run deadline is the task timeout
    assert limited.claim_lease_seconds > 7200  # the claim outlives the task
