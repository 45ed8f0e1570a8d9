"""The sandboxed loader: `python -m handlers.validation.sandbox.worker` (started by `handlers.validation.sandbox.process`).

Imports TensorFlow once, then serves JSON-line requests on stdin with one JSON line per request on
the original stdout (fd 1 is pointed at stderr so nothing a model prints can corrupt the protocol).
It applies its own resource limits before importing anything heavy, so the parent needs no
`preexec_fn` (unsafe with threads).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
from typing import Any

from handlers.validation.sandbox.protocol import (
    BAD_REQUEST,
    FSIZE_ENV,
    LOAD_FAILED,
    MEMORY_ENV,
    OUT_OF_MEMORY,
    TEST_HOOKS_ENV,
    Failure,
)

_MIB = 1024**2


def _limit(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))


def _apply_limits(memory_mb: int) -> None:
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 1024)
    _limit(resource.RLIMIT_FSIZE, int(os.environ.get(FSIZE_ENV, "20480")) * _MIB)
    # Heap growth (where model weights live) is capped at the memory budget; address space gets
    # slack for TF's thread stacks and reserved-but-unused mappings (~1.4 GiB after import).
    _limit(resource.RLIMIT_DATA, memory_mb * _MIB)
    _limit(resource.RLIMIT_AS, (memory_mb + 2048) * _MIB)


def main() -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _apply_limits(int(os.environ[MEMORY_ENV]))
    try:
        import handlers.validation.sandbox.tf_ops as tf_ops  # TF import happens here, once
    except MemoryError:
        out.write(json.dumps({"ok": False, "code": OUT_OF_MEMORY, "message": "import"}))
        return
    # TF's import leaves ~1M long-lived objects: freezing them makes each full collection (which
    # frees a Keras model's reference cycles, i.e. its weights, right away) ~2 ms instead of ~140.
    gc.collect()
    gc.freeze()
    out.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            result: dict[str, Any] = {"ok": True, **_handle(tf_ops, request)}
        except Failure as exc:
            result = {"ok": False, "code": exc.code, "message": str(exc)}
        except MemoryError:
            result = {"ok": False, "code": OUT_OF_MEMORY, "message": "MemoryError"}
        except Exception as exc:  # noqa: BLE001 anything the model throws is a load failure
            message = f"{type(exc).__name__}: {str(exc)[:600]}"
            result = {"ok": False, "code": LOAD_FAILED, "message": message}
        gc.collect()  # a failed load's traceback kept its model alive until now
        result["rss_mb"] = _rss_mb()
        out.write(json.dumps(result) + "\n")
        if result.get("code") == OUT_OF_MEMORY:
            return  # heap state after MemoryError is not trustworthy: let the parent recycle us


def _handle(tf_ops: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "ping":
        return {"pid": os.getpid()}
    if op == "keras":
        release = request.get("release_source") is True
        return tf_ops.load_keras(request["path"], request["export_dir"], release_source=release)
    if op == "saved_model":
        return tf_ops.load_saved_model(request["dir"])
    if op == "test" and os.environ.get(TEST_HOOKS_ENV) == "1":
        return _test_action(request.get("action", ""))
    raise Failure(BAD_REQUEST, f"unknown request {op!r}")


def _test_action(action: str) -> dict[str, Any]:
    if action == "segfault":
        import ctypes

        ctypes.string_at(0)
    elif action == "hang":
        import time

        time.sleep(3600)
    elif action == "allocate":
        import numpy as np

        chunks = []
        while True:  # untouched pages still count against RLIMIT_DATA: fails fast
            chunks.append(np.empty(256 * _MIB, dtype=np.uint8))
    return {"action": action}


def _rss_mb() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
