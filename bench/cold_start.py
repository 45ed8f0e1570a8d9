"""1. Cold start: a fresh process importing `main` until it is ready to serve, against the naive
registrar that imports functions-framework, storage, aiplatform and keras at load."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from bench.common import PYTHON, ROOT, Metric, Result, clean_env, log, time_to_ready
from dev.stack import free_port

_READY = "import sys; sys.stdout.write('ready\\n'); sys.stdout.flush()"
_HEAVY = (
    "import sys; print(sorted({m.split('.')[0] if not m.startswith('google.cloud.aiplatform') "
    "else 'google.cloud.aiplatform' for m in sys.modules if m.split('.')[0] in "
    "('tensorflow', 'keras') or m.startswith('google.cloud.aiplatform')}))"
)
OURS = f"import main; {_READY}; {_HEAVY}"
NAIVE = f"import bench.naive_main; {_READY}"
BARE = _READY


def run(quick: bool) -> Result:
    result = Result("cold_start", "Cold start: fresh process, `import main` -> ready")
    env = clean_env(GOOGLE_CLOUD_PROJECT="bench-project")
    repeats, ref_repeats = (2, 1) if quick else (7, 5)
    if not quick:  # warm the page cache so the first timed run is not a disk benchmark
        time_to_ready(OURS, env)
        time_to_ready(NAIVE, env)
    ours, naive, bare = [], [], []
    for i in range(max(repeats, ref_repeats)):
        if i < repeats:
            ours.append(time_to_ready(OURS, env))
            bare.append(time_to_ready(BARE, env))
        if i < ref_repeats:
            naive.append(time_to_ready(NAIVE, env))
        log(f"cold start {i + 1}: ours {ours[-1].ready_s:.3f} s, naive {naive[-1].ready_s:.3f} s")
    heavy = ours[-1].lines[1] if len(ours[-1].lines) > 1 else "?"
    result.facts["heavy_modules_after_import_main"] = heavy
    result.add(
        Metric(
            "import main -> ready (fresh process)",
            "s",
            [s.ready_s for s in ours],
            [s.ready_s for s in naive],
            "naive module: functions_framework + storage + aiplatform + keras at load",
            target="<= 0.35 s and >= 10x faster than the reference",
            check=lambda m: m["median"] <= 0.35 and m["ratio"] <= 0.1,
        )
    )
    result.add(
        Metric(
            "peak RSS of that process",
            "MiB",
            [s.peak_rss_mib for s in ours],
            [s.peak_rss_mib for s in naive],
            "same naive module",
        )
    )
    result.add(
        Metric(
            "bare interpreter start (floor, included above)",
            "s",
            [s.ready_s for s in bare],
        )
    )
    if not quick:
        server, server_ref = [], []
        for i in range(3):
            server.append(_server_ready(ROOT / "main.py", env))
            server_ref.append(_server_ready(ROOT / "bench" / "naive_main.py", env))
            log(f"server ready {i + 1}: ours {server[-1]:.3f} s, naive {server_ref[-1]:.3f} s")
        result.add(
            Metric(
                "functions-framework server: spawn -> first HTTP answer",
                "s",
                server,
                server_ref,
                "same server with the naive module",
            )
        )
    result.notes.append(
        "Time runs from spawning the interpreter to the child's first stdout line after the "
        "import; process exit is excluded (a TensorFlow process takes ~0.6 s to exit). "
        "Peak RSS is the child's own ru_maxrss."
    )
    return result


def _server_ready(source: Path, env: dict[str, str]) -> float:
    """Spawn functions-framework for `source`; seconds until it answers an HTTP request."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(Path(PYTHON).with_name("functions-framework")),
            "--target=register_model",
            "--signature-type=cloudevent",
            f"--source={source}",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"functions-framework for {source} exited {proc.returncode}")
            if time.perf_counter() - started > 120:
                raise RuntimeError(f"functions-framework for {source} did not answer in 120 s")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/"):
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
