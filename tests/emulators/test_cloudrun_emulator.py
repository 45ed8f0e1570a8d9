"""The Cloud Run jobs emulator through the real `google-cloud-run` client (REST): Cloud Run's
rules, the task environment, timeouts and retries."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gx
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from emulators.cloudrun import AdminClient, start_in_thread

PARENT = "projects/p/locations/us-central1"
SCRIPT = (
    "import os, sys, time\n"
    "keys = ['CLOUD_RUN_JOB', 'CLOUD_RUN_EXECUTION', 'CLOUD_RUN_TASK_INDEX',"
    " 'CLOUD_RUN_TASK_COUNT', 'CLOUD_RUN_TASK_ATTEMPT', 'EXTRA']\n"
    "print(' '.join(k + '=' + os.environ.get(k, '') for k in keys), flush=True)\n"
    "if os.environ.get('MODE') == 'fail_first' and os.environ['CLOUD_RUN_TASK_ATTEMPT'] == '0':"
    " sys.exit(3)\n"
    "if os.environ.get('MODE') == 'hang': time.sleep(60)\n"
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    server, url = start_in_thread(workdir=".", env={"PATH": "/usr/bin:/bin"})
    yield url
    server.shutdown()


@pytest.fixture(scope="module")
def client(emulator: str) -> run_v2.JobsClient:
    return run_v2.JobsClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=emulator),
        credentials=AnonymousCredentials(),
    )


def _job(mode: str, *, retries: int = 1, timeout: str = "20s") -> run_v2.Job:
    container = run_v2.Container(
        image="local/x",
        command=[sys.executable, "-c", SCRIPT],
        env=[run_v2.EnvVar(name="MODE", value=mode)],
    )
    return run_v2.Job(
        template=run_v2.ExecutionTemplate(
            task_count=2,
            template=run_v2.TaskTemplate(
                containers=[container], max_retries=retries, timeout=timeout
            ),
        )
    )


def _outputs(emulator: str, execution: str) -> list[dict]:
    short = execution.rsplit("/", 1)[1]
    return [a for a in AdminClient(emulator).attempts() if a["execution"] == short]


def test_tasks_get_cloud_runs_environment_and_overrides(emulator: str, client) -> None:
    job = client.create_job(parent=PARENT, job=_job("ok"), job_id="env-job").result()
    override = run_v2.RunJobRequest.Overrides(
        task_count=3,
        container_overrides=[
            run_v2.RunJobRequest.Overrides.ContainerOverride(
                env=[run_v2.EnvVar(name="EXTRA", value="yes")]
            )
        ],
    )
    operation = client.run_job(request=run_v2.RunJobRequest(name=job.name, overrides=override))
    assert operation.metadata.name.startswith(f"{job.name}/executions/env-job-")
    execution = operation.result(timeout=60)
    assert (execution.task_count, execution.succeeded_count, execution.failed_count) == (3, 3, 0)
    lines = sorted(a["output"][0] for a in _outputs(emulator, execution.name))
    short = execution.name.rsplit("/", 1)[1]
    assert lines == [
        f"CLOUD_RUN_JOB=env-job CLOUD_RUN_EXECUTION={short} CLOUD_RUN_TASK_INDEX={i} "
        "CLOUD_RUN_TASK_COUNT=3 CLOUD_RUN_TASK_ATTEMPT=0 EXTRA=yes"
        for i in range(3)
    ]


def test_a_failed_attempt_is_retried_and_a_hung_one_killed_at_the_timeout(
    emulator: str, client
) -> None:
    flaky = client.create_job(parent=PARENT, job=_job("fail_first"), job_id="flaky").result()
    done = client.run_job(name=flaky.name).result(timeout=60)
    assert (done.succeeded_count, done.retried_count) == (2, 2)

    hung = client.create_job(
        parent=PARENT, job=_job("hang", retries=0, timeout="2s"), job_id="hung"
    ).result()
    done = client.run_job(name=hung.name).result(timeout=60)
    assert (done.succeeded_count, done.failed_count) == (0, 2)
    assert done.conditions[0].state == run_v2.Condition.State.CONDITION_FAILED
    assert {a["killed"] for a in _outputs(emulator, done.name)} == {"task timeout (2s)"}


def test_cloud_runs_rules_are_enforced(client) -> None:
    with pytest.raises(gx.BadRequest):
        client.create_job(parent=PARENT, job=_job("ok"), job_id="Bad_Id")
    with pytest.raises(gx.BadRequest):
        client.create_job(parent=PARENT, job=_job("ok", retries=11), job_id="too-many")
    with pytest.raises(gx.BadRequest):
        client.create_job(parent=PARENT, job=_job("ok", timeout="700000s"), job_id="too-long")
    client.create_job(parent=PARENT, job=_job("ok"), job_id="twice").result()
    with pytest.raises(gx.Conflict):
        client.create_job(parent=PARENT, job=_job("ok"), job_id="twice")
    with pytest.raises(gx.NotFound):
        client.run_job(name=f"{PARENT}/jobs/missing")
