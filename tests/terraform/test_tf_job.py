"""Terraform evaluates the job's inputs offline: the environment it computes starts the code with
the hand-off on (or off), and bad job inputs fail at plan time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.settings import Settings
from tests.terraform import tfconsole

pytestmark = pytest.mark.skipif(tfconsole.TERRAFORM is None, reason="no terraform binary")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tfconsole.make_probe(tmp_path_factory.mktemp("tf-job"))


def test_without_the_job_the_function_has_no_job_settings(probe: Path) -> None:
    env = tfconsole.value(probe, "local.environment_variables")
    assert not {"JOB_NAME", "HANDOFF_BYTES", "JOB_TIMEOUT_SECONDS"} & set(env)
    assert Settings.from_env(env).job_name is None


def test_the_enabled_job_reaches_the_function_and_the_job(probe: Path) -> None:
    job = {"enabled": True, "timeout_seconds": 7200, "handoff_bytes": 2_000_000_000}
    env = tfconsole.value(probe, "local.environment_variables", job=job, name="reg")
    settings = Settings.from_env(env)
    assert settings.job_name == "projects/my-project/locations/us-central1/jobs/reg-job"
    assert (settings.handoff_bytes, settings.job_timeout_seconds) == (2_000_000_000, 7200)
    job_env = tfconsole.value(probe, "local.job_environment", job=job, name="reg")
    assert job_env == {**env, "JOB_TIMEOUT_SECONDS": "7200"}  # the same settings as the function


@pytest.mark.parametrize(
    "job",
    [
        {"enabled": True, "memory": "64Gi"},
        {"enabled": True, "timeout_seconds": 604801},
        {"enabled": True, "max_retries": 11},
        {"enabled": True, "handoff_bytes": 0},
        {"enabled": True, "timeout_seconds": 3600, "handoff_lease_seconds": 3600},
    ],
)
def test_bad_job_inputs_fail_at_plan_time(probe: Path, job: dict[str, Any]) -> None:
    assert tfconsole.rejected(probe, "job", job=job)
