"""Fleet backfill over the local stack: `registrar backfill --job-tasks N` starts N tasks in the
Cloud Run jobs emulator; each registers its deterministic share, each upload exactly once; a
re-run registers nothing. Scaled to 24 uploads / 3 tasks at Vertex's default budget; the issue's
"few hundred", paced against an enforced quota, is test_fleet_backfill_paced.py. Also: the task's
pace argument and `fleet.Spacing` without servers."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from handlers import fleet
from handlers.cli.app import main
from tests.conftest import LOCATION, PROJECT, Bucket, Models, Services, Vertex

pytestmark = pytest.mark.slow  # minutes: scheduled first (tests/conftest.py)

UPLOADS = 24
TASKS = 3


def test_a_fleet_backfill_registers_each_upload_exactly_once(
    services: Services, bucket: Bucket, vertex: Vertex, models: Models, registrar: Any
) -> None:
    for i in range(UPLOADS):
        bucket.upload(models.keras_a if i % 2 else models.keras_b, f"models/m{i:02d}/model.keras")
    uri = f"gs://{bucket.name}/models/"

    code, out = registrar("backfill", uri, "--job-tasks", str(TASKS), "--wait",
                          "--uploads-per-minute", "60")  # fmt: skip
    assert code == 0, out
    assert "20 UploadModel call(s)/min each" in out  # the budget split between the tasks
    names = sorted(v["displayName"] for v in vertex.all_versions())
    assert names == [f"m{i:02d}" for i in range(UPLOADS)]  # each once
    assert f"{UPLOADS} registered" in out.replace("0 already", "")

    # Every task wrote its summary: the shares cover every upload once between them.
    summaries = [bucket.read_json(n) for n in bucket.names("registrar-state/jobs/")]
    assert len(summaries) == TASKS
    assert sum(s["total"] for s in summaries) == UPLOADS
    assert all(s["state"] == "done" and s["uploads_per_minute"] == 20 for s in summaries)

    # `registrar job` lists the execution and shows its per-task progress documents.
    execution = out.split("started ", 1)[1].split(":", 1)[0].rsplit("/", 1)[1]
    code, listed = registrar("job", "--json")
    assert code == 0 and execution in listed
    code, shown = registrar("job", execution, "--json")
    document = json.loads(shown)
    assert code == 0 and document["state"] == "succeeded"
    assert document["uploads"]["registered"] == UPLOADS and len(document["tasks"]) == TASKS

    code, out = registrar("backfill", uri, "--job-tasks", str(TASKS), "--wait", "--json")
    assert code == 0
    assert json.loads(out)["uploads"]["already"] == UPLOADS
    assert len(vertex.all_versions()) == UPLOADS  # a re-run is a no-op


def test_shares_are_deterministic_and_cover_every_key_once() -> None:
    keys = [f"model-{i}" for i in range(500)]
    owners = [fleet.share(k, 7) for k in keys]
    assert owners == [fleet.share(k, 7) for k in keys]
    assert set(owners) == set(range(7))  # every task gets work at this size


def test_more_tasks_than_the_budget_is_refused(registrar: Any, bucket: Bucket) -> None:
    code, _ = registrar("backfill", f"gs://{bucket.name}/models/", "--job-tasks", "61",
                        "--uploads-per-minute", "60")  # fmt: skip
    assert code == 2


def test_a_raised_budget_allows_as_many_tasks_as_calls_a_minute() -> None:
    from handlers.cli.jobs import check_task_count
    from handlers.cli.output import CliError

    check_task_count(100, 240)  # a raised quota: more than 60 tasks, each at least 1 call/min
    check_task_count(240, 240)
    for tasks in (0, 241):
        with pytest.raises(CliError, match=r"--job-tasks must be 1\.\.240"):
            check_task_count(tasks, 240)


def test_a_live_hand_off_elsewhere_is_counted_skipped_not_already() -> None:
    assert fleet.category("duplicate", "registered") == "already"
    assert fleet.category("duplicate", "handed_off") == "skipped"
    assert fleet.category("duplicate", "rejected") == "rejected"
    assert fleet.category("registered", None) == "registered"


def test_a_fleet_backfill_starts_no_canary_and_refuses_canary(
    services: Services, cloudrun: Any, bucket: Bucket, vertex: Vertex, models: Models,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    """The job's environment is the function's, DEPLOY_ENDPOINT included: its backfill tasks
    register and deploy nothing (issue 20: a backfill starts no canary unless asked)."""
    import requests

    from dev import stack
    from tests.handoff.conftest import JOB_ID, job_env

    deploying = job_env(services, cloudrun, DEPLOY_ENDPOINT="serving-{model}")
    job = stack.create_job(cloudrun.url, deploying, job_id=f"{JOB_ID}-deploy", project=PROJECT,
                           location=LOCATION, max_retries=0, timeout_seconds=300)  # fmt: skip
    for name, value in {**deploying, "JOB_NAME": job}.items():
        monkeypatch.setenv(name, value)
    for i in range(2):
        bucket.upload((models.keras_a, models.keras_b)[i], f"models/fraud/v{i + 1}/model.keras")
    uri = f"gs://{bucket.name}/models/"

    assert main(["backfill", uri, "--job-tasks", "1", "--canary"]) == 2  # usage: not with tasks
    capsys.readouterr()
    assert main(["backfill", uri, "--job-tasks", "1", "--wait"]) == 0, capsys.readouterr().out
    assert len(vertex.all_versions()) == 2
    listed = requests.get(f"{vertex.url}/v1/{vertex.parent}/endpoints", timeout=5).json()
    assert listed.get("endpoints", []) == []  # nothing was deployed


def test_a_task_takes_any_pace_the_cli_takes(capsys: pytest.CaptureFixture[str]) -> None:
    """A split of a raised budget (240 over 3 tasks: 80 each) used to be refused by the task,
    which took only 1..60 while the CLI took up to 600."""
    from handlers import job
    from handlers.cli import backfill
    from handlers.limits import MAX_UPLOADS_PER_MINUTE

    assert backfill.MAX_UPLOADS_PER_MINUTE is MAX_UPLOADS_PER_MINUTE  # the CLI's bound: one home

    def task(pace: str) -> int:
        return job.parser().parse_args(["backfill", "gs://b/models/", "--uploads-per-minute",
                                        pace]).uploads_per_minute  # fmt: skip

    assert task("80") == 80
    assert task(str(MAX_UPLOADS_PER_MINUTE)) == MAX_UPLOADS_PER_MINUTE
    for bad in (str(MAX_UPLOADS_PER_MINUTE + 1), "0", "many"):
        with pytest.raises(SystemExit) as exited:
            task(bad)
        assert exited.value.code == 2
    message = capsys.readouterr().err
    assert (
        f"601 is out of range: 1..{MAX_UPLOADS_PER_MINUTE} UploadModel calls per minute" in message
    )
    assert "'many' is not a whole number" in message


def test_spacing_keeps_any_minute_under_the_pace_with_slack() -> None:
    """Calls `(60 + SLACK_SECONDS) / K` apart: K+1 calls never fit in a minute, even when each
    arrives at Vertex up to SLACK_SECONDS later than the one K calls after it."""
    now = [0.0]
    spacing = fleet.Spacing(
        80, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    stamps = []
    for i in range(300):
        spacing.wait()
        stamps.append(now[0])
        now[0] += 0.2 if i % 7 else 2.0  # the work between calls: sometimes longer than a gap
    assert spacing.calls == 300
    assert all(b - a >= 61.0 / 80 - 1e-9 for a, b in itertools.pairwise(stamps))
    assert all(stamps[i + 80] - stamps[i] >= 60.0 + fleet.SLACK_SECONDS - 1e-6
               for i in range(len(stamps) - 80))  # fmt: skip
