"""The Cloud Run jobs emulator (a real process, driven by the real `google-cloud-run` client) and
a function configured to hand large uploads to a job in it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dev import stack
from emulators.cloudrun.admin import AdminClient
from handlers.handoff import jobs
from handlers.settings import Settings
from tests.conftest import LOCATION, PROJECT, Services, _function_app, function_env

JOB_ID = "registrar-job-test"


@pytest.fixture(scope="session")
def cloudrun(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Service]:
    service = stack.start_cloudrun_emulator(log_dir=tmp_path_factory.mktemp("cloudrun-logs"))
    yield service
    service.stop()


@pytest.fixture
def cloudrun_admin(cloudrun: stack.Service) -> Iterator[AdminClient]:
    admin = AdminClient(cloudrun.url)
    admin.clear_faults()
    yield admin
    admin.clear_faults()


def job_env(services: Services, cloudrun: stack.Service, **extra: str) -> dict[str, str]:
    return function_env(services, CLOUD_RUN_EMULATOR_HOST=cloudrun.url, LOG_LEVEL="INFO", **extra)


@pytest.fixture(scope="session")
def job_name(services: Services, cloudrun: stack.Service) -> str:
    """The job as terraform/job.tf deploys it: the function's settings, `python -m handlers.job`;
    2 retries per task, as a task that dies is retried by the platform."""
    return stack.create_job(
        cloudrun.url,
        job_env(services, cloudrun),
        job_id=JOB_ID,
        project=PROJECT,
        location=LOCATION,
        max_retries=2,
        timeout_seconds=300,
    )


def handoff_env(services: Services, cloudrun: stack.Service, job: str) -> dict[str, str]:
    # Any model here is a few kB: a tiny threshold sends every upload to the job.
    return job_env(services, cloudrun, JOB_NAME=job, HANDOFF_BYTES="1024")


@pytest.fixture(scope="session")
def handoff_client(services: Services, cloudrun: stack.Service, job_name: str) -> Any:
    """functions-framework's app for main.py with JOB_NAME and a tiny HANDOFF_BYTES."""
    saved = dict(os.environ)
    os.environ.update(handoff_env(services, cloudrun, job_name))
    try:
        return _function_app(services, asgi=True)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_for(services: Services, cloudrun: stack.Service, job: str) -> Settings:
    return Settings.from_env(handoff_env(services, cloudrun, job))


def wait_execution(settings: Settings, name: str, timeout: float = 240.0) -> jobs.Execution:
    """Poll the execution through the real client until every task has finished."""
    deadline = time.monotonic() + timeout
    while True:
        found = jobs.execution(settings, name)
        if found.done or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture
def registrar(
    services: Services,
    cloudrun: stack.Service,
    job_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str]]:
    """`registrar ARGS...` in this process, configured for the job: (exit status, stdout)."""
    from handlers.cli.app import main

    for name, value in handoff_env(services, cloudrun, job_name).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    # `--wait` polls every 5 s (an operator's pace): a test need not wait that out
    monkeypatch.setattr("handlers.cli.jobs.POLL_SECONDS", 1.0)

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(argv))
        return code, capsys.readouterr().out

    return run
