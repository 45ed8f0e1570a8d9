"""`make up` / `make down`: the local stack, left running for your own uploads.

`start` launches fake-gcs-server, the Vertex AI emulator, functions-framework and the event bridge
as background processes (pids in .dev-run/pids), prints how to use them, and returns.
`stop` ends them all.
"""

from __future__ import annotations

import json
import os
import signal
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
    services = stack.start_stack(log_dir=logs, with_function=False)
    stack_env = stack.function_env(services.storage.url, services.vertex.url)
    function = stack.start_function(stack_env, log_dir=logs)
    bridge = subprocess.Popen(
        [sys.executable, "-m", "dev.bridge", "--storage", services.storage.url, "--bucket",
         stack.BUCKET, "--function", function.url],
        cwd=stack.ROOT, stdout=(logs / "bridge.log").open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pids = [s.proc.pid for s in (services.storage, services.vertex, function)] + [bridge.pid]
    PIDS.write_text(json.dumps(pids))
    print(f"""
Local stack is up (logs in {logs.relative_to(stack.ROOT)}/):
  fake-gcs-server     {services.storage.url}   bucket gs://{stack.BUCKET} (versioned)
  Vertex AI emulator  {services.vertex.url}
  function            {function.url}           (events delivered by the bridge)

Upload a model (any client that honours STORAGE_EMULATOR_HOST), for example:
  export STORAGE_EMULATOR_HOST={services.storage.url} VERTEX_AI_EMULATOR_HOST={services.vertex.url}
  export GOOGLE_CLOUD_PROJECT={stack.PROJECT}
  .venv/bin/python -c "from google.cloud import storage; storage.Client().bucket('{stack.BUCKET}')\\
.blob('models/my-model/v1/model.keras').upload_from_filename('model.keras')"
  .venv/bin/registrar versions my-model
Stop everything with: make down
""", flush=True)


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
    time.sleep(0.5)
    PIDS.unlink()
    if not quiet:
        print("local stack stopped")


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1] if len(sys.argv) > 1 else "start"]()
