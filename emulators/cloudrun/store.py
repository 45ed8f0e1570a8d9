"""Jobs, executions and their long-running operations, with Cloud Run's rules.

Rules enforced (Cloud Run Admin API v2, cloud.google.com/run/docs/reference/rest/v2/projects.
locations.jobs and run/docs/configuring/task-timeout, /max-retries, /jobs/parallelism):
* a job id is 1-63 lowercase letters, digits and hyphens, starting with a letter, not ending in a
  hyphen; creating an existing job is ALREADY_EXISTS; a job needs exactly one container image;
* `taskCount` 1..10000 (default 1); `maxRetries` 0..10 (default 3); the task `timeout` is a
  duration up to 168 h (default 600 s); overrides (`containerOverrides` args/env, `taskCount`,
  `timeout`) apply to one execution only, and a named container override must name a container;
* an execution is `{job}-{5 characters}`; `jobs.run` returns an operation whose metadata is the
  execution and which is done (response: the execution) when every task has finished.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from emulators.cloudrun.errors import exists, invalid, not_found
from emulators.cloudrun.runner import Runner, TaskResult

_JOB_ID = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DURATION = re.compile(r"(\d+)(?:\.\d+)?s")
MAX_TASKS = 10_000
MAX_RETRIES = 10
MAX_TIMEOUT_S = 168 * 3600
DEFAULT_TIMEOUT_S = 600
DEFAULT_RETRIES = 3


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def seconds(value: Any, field: str) -> int:
    match = _DURATION.fullmatch(str(value))
    if not match:
        raise invalid(f"{field}: invalid duration {value!r}; expected e.g. '600s'.")
    number = int(match.group(1))
    if not 0 < number <= MAX_TIMEOUT_S:
        raise invalid(f"{field} must be between 1s and {MAX_TIMEOUT_S}s (168 hours).")
    return number


class Store:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.jobs: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, str] = {}  # operation name -> execution name
        self._lock = threading.RLock()

    # -- jobs --------------------------------------------------------------------------------
    def create_job(self, parent: str, job_id: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if not job_id or not _JOB_ID.fullmatch(job_id):
            raise invalid(
                f"job_id {job_id!r}: must be 1-63 lowercase letters, digits or hyphens, start "
                "with a letter and not end with a hyphen."
            )
        name = f"{parent}/jobs/{job_id}"
        template = body.get("template") or {}
        task = template.get("template") or {}
        containers = task.get("containers") or []
        if len(containers) != 1 or not containers[0].get("image"):
            raise invalid("template.template.containers: a job needs exactly one container image.")
        task_count = int(template.get("taskCount") or 1)
        _check_task_count(task_count)
        retries = int(task.get("maxRetries", DEFAULT_RETRIES))
        if not 0 <= retries <= MAX_RETRIES:
            raise invalid(f"template.template.maxRetries must be 0..{MAX_RETRIES}.")
        timeout = seconds(task.get("timeout", f"{DEFAULT_TIMEOUT_S}s"), "template.template.timeout")
        with self._lock:
            if name in self.jobs:
                raise exists(f"Resource '{job_id}' already exists.")
            job = {
                **body,
                "name": name,
                "uid": str(uuid.uuid4()),
                "generation": "1",
                "createTime": now(),
                "updateTime": now(),
                "executionCount": 0,
                "template": {
                    **template,
                    "taskCount": task_count,
                    "parallelism": int(template.get("parallelism") or 0),
                    "template": {**task, "maxRetries": retries, "timeout": f"{timeout}s"},
                },
            }
            self.jobs[name] = job
        return {"name": _operation_name(parent), "done": True, "response": _typed("Job", job)}

    def get_job(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self.jobs:
                raise not_found(f"Resource '{name}' was not found")
            return self.jobs[name]

    def list_jobs(self, parent: str) -> dict[str, Any]:
        with self._lock:
            return {"jobs": [j for n, j in sorted(self.jobs.items()) if n.startswith(parent + "/")]}

    def delete_job(self, name: str) -> dict[str, Any]:
        with self._lock:
            job = self.get_job(name)
            del self.jobs[name]
        parent = name.rsplit("/jobs/", 1)[0]
        return {"name": _operation_name(parent), "done": True, "response": _typed("Job", job)}

    # -- run ---------------------------------------------------------------------------------
    def run_job(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        job = self.get_job(name)
        overrides = body.get("overrides") or {}
        template = job["template"]
        task = template["template"]
        container = dict(task["containers"][0])
        for override in overrides.get("containerOverrides") or []:
            wanted = override.get("name")
            if wanted and wanted != container.get("name"):
                raise invalid(f"overrides.containerOverrides: no container named {wanted!r}.")
            if override.get("args") or override.get("clearArgs"):
                container["args"] = list(override.get("args") or [])
            env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
            env.update({e["name"]: e.get("value", "") for e in override.get("env") or []})
            container["env"] = [{"name": k, "value": v} for k, v in env.items()]
        task_count = int(overrides.get("taskCount") or template["taskCount"])
        _check_task_count(task_count)
        timeout = seconds(overrides.get("timeout") or task["timeout"], "overrides.timeout")
        if body.get("validateOnly"):
            return {"name": _operation_name(name.rsplit("/jobs/", 1)[0]), "done": True}
        execution_id = f"{name.rsplit('/', 1)[1]}-{_suffix()}"
        execution = {
            "name": f"{name}/executions/{execution_id}",
            "uid": str(uuid.uuid4()),
            "job": name.rsplit("/", 1)[1],
            "createTime": now(),
            "startTime": now(),
            "taskCount": task_count,
            "parallelism": template["parallelism"],
            "runningCount": 0,
            "succeededCount": 0,
            "failedCount": 0,
            "cancelledCount": 0,
            "retriedCount": 0,
            "reconciling": True,
            "template": {**task, "containers": [container], "timeout": f"{timeout}s"},
            "conditions": [{"type": "Completed", "state": "CONDITION_PENDING"}],
        }
        operation = _operation_name(name.rsplit("/jobs/", 1)[0])
        with self._lock:
            self.executions[execution["name"]] = execution
            self.operations[operation] = execution["name"]
            job["executionCount"] = int(job.get("executionCount", 0)) + 1
            job["latestCreatedExecution"] = {"name": execution["name"], "createTime": now()}
        self.runner.start(
            execution_id=execution_id,
            job_id=execution["job"],
            container=container,
            task_count=task_count,
            parallelism=template["parallelism"],
            max_retries=int(task["maxRetries"]),
            timeout_s=timeout,
            report=lambda result, name=execution["name"]: self._report(name, result),
        )
        return self.get_operation(operation)

    def _report(self, name: str, result: TaskResult) -> None:
        """A task attempt started, was retried, or finished: update the execution's counts."""
        with self._lock:
            e = self.executions[name]
            if result.event == "started" and result.attempt == 0:
                e["runningCount"] += 1
            elif result.event == "retried":
                e["retriedCount"] += 1
            elif result.event in ("succeeded", "failed"):
                e["runningCount"] -= 1
                e[f"{result.event}Count"] += 1
            done = e["succeededCount"] + e["failedCount"] + e["cancelledCount"]
            if done == e["taskCount"]:
                e["completionTime"] = now()
                e["reconciling"] = False
                ok = e["failedCount"] == 0
                e["conditions"] = [
                    {
                        "type": "Completed",
                        "state": "CONDITION_SUCCEEDED" if ok else "CONDITION_FAILED",
                        "message": f"{e['succeededCount']}/{e['taskCount']} tasks succeeded"
                        + ("" if ok else f"; {e['failedCount']} failed after their retries"),
                        "lastTransitionTime": now(),
                    }
                ]

    # -- executions and operations -------------------------------------------------------------
    def get_execution(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self.executions:
                raise not_found(f"Resource '{name}' was not found")
            return dict(self.executions[name])

    def list_executions(self, parent: str) -> dict[str, Any]:
        self.get_job(parent)
        with self._lock:
            found = [dict(e) for n, e in self.executions.items() if n.startswith(parent + "/")]
        return {"executions": sorted(found, key=lambda e: e["createTime"], reverse=True)}

    def get_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self.operations:
                raise not_found(f"Operation '{name}' was not found")
            execution = self.get_execution(self.operations[name])
        operation = {"name": name, "metadata": _typed("Execution", execution), "done": False}
        if "completionTime" in execution:
            operation.update(done=True, response=_typed("Execution", execution))
        return operation


def _check_task_count(count: int) -> None:
    if not 1 <= count <= MAX_TASKS:
        raise invalid(f"taskCount must be between 1 and {MAX_TASKS}.")


def _typed(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"@type": f"type.googleapis.com/google.cloud.run.v2.{kind}", **value}


def _operation_name(parent: str) -> str:
    return f"{parent}/operations/{uuid.uuid4()}"


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
