"""Runs an execution's tasks as local processes, as Cloud Run runs them in containers.

Each task attempt gets the container's environment plus what Cloud Run sets
(run/docs/container-contract#jobs-env-vars): CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION,
CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_COUNT, CLOUD_RUN_TASK_ATTEMPT. An attempt that exits
non-zero, or outlives the task timeout (killed, with its process group), is retried up to
`maxRetries` times; attempts of one task never overlap. Up to `parallelism` tasks run at once
(0: as many as the emulator allows, `max_parallel`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LOG = logging.getLogger("emulators.cloudrun")
BUILDPACK_LAUNCHER = "/cnb/lifecycle/launcher"
OUTPUT_LINES = 200  # kept per attempt for /_emulator/tasks


@dataclass(frozen=True)
class TaskResult:
    index: int
    attempt: int
    event: str  # started | retried | succeeded | failed


@dataclass
class Attempt:
    execution: str
    index: int
    attempt: int
    exit_code: int | None = None
    killed: str | None = None  # why the emulator killed it (timeout, fault)
    output: deque[str] = field(default_factory=lambda: deque(maxlen=OUTPUT_LINES))

    def view(self) -> dict[str, Any]:
        return {
            "execution": self.execution,
            "index": self.index,
            "attempt": self.attempt,
            "exit_code": self.exit_code,
            "killed": self.killed,
            "output": list(self.output),
        }


class Faults:
    """`kill_on_output`: the next `count` attempts that print `text` are killed (SIGKILL) right
    there, as a task dies mid-way (an instance lost, out of memory)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kills: list[list[Any]] = []  # [text, remaining]

    def add(self, text: str, count: int) -> None:
        with self._lock:
            self._kills.append([text, count])

    def clear(self) -> None:
        with self._lock:
            self._kills.clear()

    def should_kill(self, line: str) -> bool:
        with self._lock:
            for kill in self._kills:
                if kill[1] > 0 and kill[0] in line:
                    kill[1] -= 1
                    return True
        return False


class Runner:
    def __init__(
        self,
        workdir: str | Path,
        base_env: dict[str, str] | None = None,
        max_parallel: int = 4,
    ) -> None:
        self.workdir = str(workdir)
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.max_parallel = max_parallel
        self.faults = Faults()
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen[str]] = set()

    def start(
        self,
        *,
        execution_id: str,
        job_id: str,
        container: dict[str, Any],
        task_count: int,
        parallelism: int,
        max_retries: int,
        timeout_s: int,
        report: Callable[[TaskResult], None],
    ) -> None:
        pending = deque(range(task_count))
        lanes = min(task_count, parallelism or self.max_parallel, self.max_parallel)
        env = {
            **self.base_env,
            **{e["name"]: e.get("value", "") for e in container.get("env") or []},
            "CLOUD_RUN_JOB": job_id,
            "CLOUD_RUN_EXECUTION": execution_id,
            "CLOUD_RUN_TASK_COUNT": str(task_count),
        }
        command = _command(container)

        def lane() -> None:
            while True:
                with self._lock:
                    if not pending:
                        return
                    index = pending.popleft()
                self._task(execution_id, index, env, command, max_retries, timeout_s, report)

        for n in range(lanes):
            threading.Thread(target=lane, name=f"{execution_id}-lane{n}", daemon=True).start()

    def _task(
        self,
        execution_id: str,
        index: int,
        env: dict[str, str],
        command: list[str],
        max_retries: int,
        timeout_s: int,
        report: Callable[[TaskResult], None],
    ) -> None:
        for attempt in range(max_retries + 1):
            report(TaskResult(index, attempt, "started"))
            record = Attempt(execution_id, index, attempt)
            with self._lock:
                self.attempts.append(record)
            task_env = {
                **env,
                "CLOUD_RUN_TASK_INDEX": str(index),
                "CLOUD_RUN_TASK_ATTEMPT": str(attempt),
            }
            self._run(record, command, task_env, timeout_s)
            if record.exit_code == 0:
                report(TaskResult(index, attempt, "succeeded"))
                return
            _LOG.info(
                "%s task %d attempt %d ended (exit %s%s)",
                execution_id, index, attempt, record.exit_code,
                f", killed: {record.killed}" if record.killed else "",
            )  # fmt: skip
            if attempt < max_retries:
                report(TaskResult(index, attempt, "retried"))
        report(TaskResult(index, max_retries, "failed"))

    def _run(
        self, record: Attempt, command: list[str], env: dict[str, str], timeout_s: int
    ) -> None:
        try:
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,  # a kill takes the task's children (the sandbox) too
            )
        except OSError as exc:
            record.output.append(f"cannot start {command!r}: {exc}")
            record.exit_code = 127
            return
        with self._lock:
            self._processes.add(process)

        def timeout() -> None:
            record.killed = record.killed or f"task timeout ({timeout_s}s)"
            _kill(process)

        timer = threading.Timer(timeout_s, timeout)
        timer.daemon = True
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                record.output.append(line.rstrip("\n"))
                _LOG.debug("%s/%d/%d: %s", record.execution, record.index, record.attempt, line)
                if self.faults.should_kill(line):
                    record.killed = "fault: kill_on_output"
                    _kill(process)
            record.exit_code = process.wait()
        finally:
            timer.cancel()
            with self._lock:
                self._processes.discard(process)

    def stop(self) -> None:
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            _kill(process)


def _command(container: dict[str, Any]) -> list[str]:
    """The container's entry: `command` + `args`. A `python`/`python3` command is this
    interpreter (the local stand-in for the image's Python); a leading buildpack launcher (what
    terraform/job.tf puts first) is dropped."""
    command = [*(container.get("command") or []), *(container.get("args") or [])]
    if not command:
        raise ValueError(
            "the container has no command: the emulator cannot run an image entrypoint"
        )
    if command[0] == BUILDPACK_LAUNCHER:  # the image's environment is this machine's
        command = command[1:]
    if command[0] in ("python", "python3"):
        command[0] = sys.executable
    return command


def _kill(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
