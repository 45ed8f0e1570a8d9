"""Over HTTP: an upload the function cannot take is handed to a Cloud Run job execution (the
emulator runs `python -m handlers.job` as a local process) and registered by it exactly once."""

from __future__ import annotations

from typing import Any

from emulators.cloudrun.admin import AdminClient
from tests.conftest import Bucket, Models, Services, Vertex, deliver
from tests.handoff.conftest import settings_for, wait_execution


def _record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any]:
    return bucket.read_json(
        f"registrar-state/uploads/{resource['name']}/g{resource['generation']}.json"
    )


def test_upload_over_the_threshold_is_registered_by_a_job_exactly_once(
    services: Services,
    cloudrun: Any,
    job_name: str,
    handoff_client: Any,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
) -> None:
    settings = settings_for(services, cloudrun, job_name)
    resource = bucket.upload(models.keras_a, "models/big/v1/model.keras")
    assert deliver(handoff_client, resource) == 200
    handed = _record(bucket, resource)
    assert handed["state"] == "handed_off"
    assert handed["reason"]["code"] == "too_large_for_function"
    execution = handed["handoff"]["execution"]
    assert execution.startswith(f"{job_name}/executions/")
    # `registrar status` names the execution that holds it (while it does).
    from handlers.cli.status import summary_row

    assert execution in summary_row(handed)["detail"]
    # A redelivery while the job holds the upload starts nothing new.
    assert deliver(handoff_client, resource) == 200
    assert _record(bucket, resource)["handoff"]["execution"] == execution

    done = wait_execution(settings, execution)
    assert (done.state, done.succeeded, done.failed) == ("succeeded", 1, 0), done
    record = _record(bucket, resource)
    assert record["state"] == "registered"
    assert record["handoff"]["execution"] == execution  # which execution did it
    assert [v["displayName"] for v in vertex.all_versions()] == ["big"]
    assert record["validation"]  # the same checks ran, in the job

    # Another delivery after the job registered it: a duplicate, no second version or execution.
    assert deliver(handoff_client, resource) == 200
    assert len(vertex.all_versions()) == 1
    assert _record(bucket, resource)["history"][-1]["state"] == "registered"


def test_a_task_killed_mid_way_is_retried_without_a_duplicate(
    services: Services,
    cloudrun: Any,
    cloudrun_admin: AdminClient,
    job_name: str,
    handoff_client: Any,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
) -> None:
    """The first attempt is SIGKILLed right after it took the claim over (its claim still held,
    its lease unexpired); the platform's retry of the same task takes over and registers once."""
    settings = settings_for(services, cloudrun, job_name)
    cloudrun_admin.kill_on_output("taken over by job task", count=1)
    resource = bucket.upload(models.keras_b, "models/killed/v1/model.keras")
    assert deliver(handoff_client, resource) == 200
    execution = _record(bucket, resource)["handoff"]["execution"]

    done = wait_execution(settings, execution)
    assert (done.state, done.succeeded, done.retried) == ("succeeded", 1, 1), done
    attempts = [a for a in cloudrun_admin.attempts() if a["execution"] == execution.rsplit("/")[-1]]
    assert [a["killed"] for a in attempts] == ["fault: kill_on_output", None]
    record = _record(bucket, resource)
    assert record["state"] == "registered" and record["attempts"] >= 3  # function, dead, retry
    assert len(vertex.all_versions()) == 1


def test_a_lost_execution_is_noticed_and_the_upload_started_again(
    services: Services,
    cloudrun: Any,
    job_name: str,
    handoff_client: Any,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
) -> None:
    """A hand-off whose execution never ran (its expiry passed, nothing registered): the next
    delivery of the upload's event takes it over and hands it to a new execution."""
    import json
    import time

    settings = settings_for(services, cloudrun, job_name)
    resource = bucket.upload(models.keras_a, "models/lost/v1/model.keras")
    name = f"registrar-state/uploads/{resource['name']}/g{resource['generation']}.json"
    lost = {"state": "handed_off", "source": f"gs://{bucket.name}/{resource['name']}",
            "handoff": {"token": "lost", "execution": f"{job_name}/executions/gone",
                        "expires_epoch": time.time() - 1}}  # fmt: skip
    bucket.handle.blob(name).upload_from_string(json.dumps(lost), if_generation_match=0)

    assert deliver(handoff_client, resource) == 200
    again = _record(bucket, resource)["handoff"]["execution"]
    assert again.startswith(f"{job_name}/executions/") and not again.endswith("/gone")
    done = wait_execution(settings, again)
    assert done.state == "succeeded", done
    assert _record(bucket, resource)["state"] == "registered"
    assert [v["displayName"] for v in vertex.all_versions()] == ["lost"]
