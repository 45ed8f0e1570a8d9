"""`make up` / `make down`: the local stack, left running for your own uploads.

`start` launches fake-gcs-server, the Vertex AI emulator, the Cloud Run jobs emulator (with the
registrar's job, so uploads at or above HANDOFF_BYTES — `UP_HANDOFF_BYTES`, default 50 MB here —
are handed off to it), functions-framework and the event bridge as background processes (pids in .dev-run/pids), prints how to use them, and returns.
`stop` ends them all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from dev import stack

RUN_DIR = stack.ROOT / ".dev-run"
PIDS = RUN_DIR / "pids.json"


def start() -> None:
    if PIDS.exists():
        stop(quiet=True)
    logs = RUN_DIR / "logs"
    # Fixed, well-known ports (overridable) so the commands below stay the same between runs.
    storage = stack.start_fake_gcs(_port("STORAGE", 4443), log_dir=logs)
    vertex = stack.start_vertex_emulator(  # deployments take time, as on Vertex (minutes there)
        _port("VERTEX", 8089),
        log_dir=logs,
        storage_url=storage.url,
        deploy_seconds=float(os.environ.get("UP_DEPLOY_SECONDS", "3")),
    )
    services = stack.Stack(storage, vertex)
    stack.create_bucket(storage.url)
    cloudrun = stack.start_cloudrun_emulator(_port("CLOUDRUN", 8090), log_dir=logs)
    base_env = stack.function_env(
        services.storage.url, services.vertex.url, CLOUD_RUN_EMULATOR_HOST=cloudrun.url
    )
    job = stack.create_job(cloudrun.url, base_env)
    handoff = os.environ.get("UP_HANDOFF_BYTES", str(50 * 10**6))
    stack_env = {**base_env, "JOB_NAME": job, "HANDOFF_BYTES": handoff}
    function = stack.start_function(stack_env, _port("FUNCTION", 8080), log_dir=logs)
    bridge = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dev.bridge",
            "--storage",
            services.storage.url,
            "--bucket",
            stack.BUCKET,
            "--function",
            function.url,
        ],
        cwd=stack.ROOT,
        stdout=(logs / "bridge.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids = [s.proc.pid for s in (services.storage, services.vertex, cloudrun, function)]
    pids.append(bridge.pid)
    PIDS.write_text(json.dumps(pids))
    print(
        f"""
Local stack is up (logs in {logs.relative_to(stack.ROOT)}/):
  fake-gcs-server     {services.storage.url}   bucket gs://{stack.BUCKET} (versioned)
  Vertex AI emulator  {services.vertex.url}
  Cloud Run jobs      {cloudrun.url}   job {job}
  function            {function.url}           (events delivered by the bridge;
                      uploads of {int(handoff):,} bytes or more go to the job)

Upload a model (any client that honours STORAGE_EMULATOR_HOST), for example:
  export STORAGE_EMULATOR_HOST={services.storage.url} VERTEX_AI_EMULATOR_HOST={services.vertex.url}
  export GOOGLE_CLOUD_PROJECT={stack.PROJECT}
  .venv/bin/python -c "from google.cloud import storage; storage.Client().bucket('{stack.BUCKET}')\\
.blob('models/my-model/v1/model.keras').upload_from_filename('model.keras')"
  .venv/bin/registrar versions my-model
  CLOUD_RUN_EMULATOR_HOST={cloudrun.url} JOB_NAME={job} .venv/bin/registrar job
Stop everything with: make down
""",
        flush=True,
    )


def _port(service: str, default: int) -> int:
    wanted = int(os.environ.get(f"UP_{service}_PORT", default))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", wanted)) != 0:
            return wanted
    print(f"port {wanted} is busy; using a free one for {service.lower()}", flush=True)
    return stack.free_port()


def stop(quiet: bool = False) -> None:
    if not PIDS.exists():
        if not quiet:
            print("nothing to stop")
        return
    for pid in json.loads(PIDS.read_text()):
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in json.loads(PIDS.read_text())):
        time.sleep(0.2)
    PIDS.unlink()
    if not quiet:
        print("local stack stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]()
