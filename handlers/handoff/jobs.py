"""The Cloud Run Admin API v2 (`google-cloud-run`, REST) for the job that takes over uploads.

`start` runs one execution of JOB_NAME with overrides (args, env, task count); the function
holds `run.jobs.runWithOverrides` on that job only (terraform/job.tf). `execution` and
`executions` read what the operator follows (`registrar job`). With CLOUD_RUN_EMULATOR_HOST set,
everything goes to the local stand-in (emulators/cloudrun/) with anonymous credentials.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import run_v2

from ..errors import PermanentError, PermissionDenied, TransientError
from ..settings import Settings

RPC_TIMEOUT_SECONDS = 30.0
_TRANSIENT = (
    gexc.TooManyRequests,
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.BadGateway,
)


@dataclass(frozen=True)
class Execution:
    """What an operator follows: counts of the execution's tasks, and whether it is over."""

    name: str
    task_count: int
    running: int
    succeeded: int
    failed: int
    retried: int
    cancelled: int
    done: bool
    state: str  # running | succeeded | failed
    message: str
    args: tuple[str, ...] = ()  # the container's args, overrides applied (what the tasks ran)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def job_path(settings: Settings) -> str:
    if not settings.job_name:
        raise PermanentError("JOB_NAME is not set: no Cloud Run job is configured")
    if settings.job_name.startswith("projects/"):
        return settings.job_name
    return f"projects/{settings.project}/locations/{settings.location}/jobs/{settings.job_name}"


def _options(settings: Settings, region: str) -> dict[str, Any]:
    if settings.cloud_run_emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return {
            "transport": "rest",
            "client_options": {"api_endpoint": settings.cloud_run_emulator_host},
            "credentials": AnonymousCredentials(),
        }
    return {"transport": "rest", "client_options": {"api_endpoint": f"{region}-run.googleapis.com"}}


def _region(name: str) -> str:
    return name.split("/locations/", 1)[1].split("/", 1)[0]


def jobs_client(settings: Settings) -> run_v2.JobsClient:
    return run_v2.JobsClient(**_options(settings, _region(job_path(settings))))


def executions_client(settings: Settings, name: str) -> run_v2.ExecutionsClient:
    return run_v2.ExecutionsClient(**_options(settings, _region(name)))


def start(
    settings: Settings,
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    task_count: int | None = None,
) -> str:
    """Start one execution of JOB_NAME with these overrides; returns the execution's name
    (from the operation's metadata: no wait for the execution)."""
    job = job_path(settings)
    overrides = run_v2.RunJobRequest.Overrides(
        container_overrides=[
            run_v2.RunJobRequest.Overrides.ContainerOverride(
                args=list(args),
                env=[run_v2.EnvVar(name=k, value=v) for k, v in (env or {}).items()],
            )
        ],
        task_count=task_count or 0,
    )
    with _errors(job, "run.jobs.runWithOverrides"):
        operation = jobs_client(settings).run_job(
            request=run_v2.RunJobRequest(name=job, overrides=overrides),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        return str(operation.metadata.name)


def execution(settings: Settings, name: str) -> Execution:
    with _errors(name, "run.executions.get"):
        found = executions_client(settings, name).get_execution(
            name=name, timeout=RPC_TIMEOUT_SECONDS
        )
    return _view(found)


def executions(settings: Settings, limit: int = 20) -> Iterator[Execution]:
    job = job_path(settings)
    with _errors(job, "run.executions.list"):
        for n, found in enumerate(executions_client(settings, job).list_executions(parent=job)):
            if n >= limit:
                return
            yield _view(found)


def _view(e: run_v2.Execution) -> Execution:
    completed = next((c for c in e.conditions if c.type_ == "Completed"), None)
    done = bool(e.completion_time) or (e.succeeded_count + e.failed_count + e.cancelled_count
                                       >= e.task_count > 0)  # fmt: skip
    state = "running"
    if done:
        state = "failed" if e.failed_count or e.cancelled_count else "succeeded"
    return Execution(
        name=e.name,
        task_count=e.task_count,
        running=e.running_count,
        succeeded=e.succeeded_count,
        failed=e.failed_count,
        retried=e.retried_count,
        cancelled=e.cancelled_count,
        done=done,
        state=state,
        message=completed.message if completed else "",
        args=tuple(e.template.containers[0].args) if e.template.containers else (),
    )


class _errors:
    """google.api_core errors -> ours: 403 names the permission; 429/5xx are transient."""

    def __init__(self, resource: str, permission: str) -> None:
        self.resource = resource
        self.permission = permission

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, gexc.PermissionDenied):
            raise PermissionDenied(
                f"Cloud Run refused {self.permission} on {self.resource}: {exc.message}",
                permission=self.permission,
                resource=self.resource,
            ) from exc
        if isinstance(exc, gexc.NotFound):
            # The deployment's fault, not the upload's: retried, never recorded as a rejection.
            raise TransientError(
                f"{self.resource} does not exist: check JOB_NAME (Terraform: job.enabled)",
                code="job_not_found",
            ) from exc
        if isinstance(exc, (*_TRANSIENT, gexc.RetryError, ConnectionError)):
            raise TransientError(f"Cloud Run {self.permission} failed: {exc}") from exc
        if isinstance(exc, gexc.GoogleAPICallError):
            raise TransientError(f"Cloud Run {self.permission} failed: {exc}") from exc
        return False
