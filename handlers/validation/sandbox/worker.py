"""The sandboxed loader, in its own process: `process.Sandbox` starts it with `python -I -c` (see
`process._BOOT`, which puts the project root on sys.path) and talks to it over stdin/stdout.

Imports TensorFlow once, then serves JSON-line requests on stdin with one JSON line per request on
the original stdout (fd 1 is pointed at stderr so nothing a model prints can corrupt the protocol).
It applies its own resource limits before importing anything heavy, so the parent needs no
`preexec_fn` (unsafe with threads), and confines itself (`confine`: Landlock, capabilities,
seccomp) once, after TensorFlow's import and before the first request: the layers cost nothing
per request. Its ready line reports which layers hold.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .protocol import (
    BAD_REQUEST,
    DETAIL_LIMIT,
    FSIZE_ENV,
    INBOX_DIR,
    KERAS_MODULES_ENV,
    LOAD_FAILED,
    MEMORY_ENV,
    OUT_OF_MEMORY,
    SCRATCH_DIRS,
    TEST_HOOKS_ENV,
    WRITABLE_ENV,
    Failure,
)

_MIB = 1024**2


def _limit(kind: int, value: int) -> None:
    _soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))


_LIMITS_SET = False


def _apply_limits(memory_mb: int) -> None:
    global _LIMITS_SET
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 1024)
    _limit(resource.RLIMIT_FSIZE, int(os.environ.get(FSIZE_ENV, "20480")) * _MIB)
    # Heap growth (where model weights live) is capped at the memory budget; address space gets
    # slack for TF's thread stacks and reserved-but-unused mappings (~1.4 GiB after import).
    _limit(resource.RLIMIT_DATA, memory_mb * _MIB)
    _limit(resource.RLIMIT_AS, (memory_mb + 2048) * _MIB)
    _LIMITS_SET = True


def main() -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # numpy's BLAS pool would be a thread started before `confine`, outside its per-thread layers.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    _apply_limits(int(os.environ[MEMORY_ENV]))
    try:
        from . import tf_ops as tf_ops  # TF import happens here, once
    except MemoryError:
        answer = _answer(OUT_OF_MEMORY, "MemoryError importing TensorFlow", {"step": "import"})
        out.write(json.dumps(answer) + "\n")
        return
    # TF's import leaves ~1M long-lived objects: freezing them makes each full collection (which
    # frees a Keras model's reference cycles, i.e. its weights, right away) ~2 ms instead of ~140.
    custom = _import_custom_modules()
    gc.collect()
    gc.freeze()
    begun = time.perf_counter()
    layers = _confine()
    confine_ms = round((time.perf_counter() - begun) * 1000, 3)
    ready = {"ready": True, "pid": os.getpid(), "layers": layers, "confine_ms": confine_ms}
    if custom:
        ready["keras_modules"] = custom
    out.write(json.dumps(ready) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            result: dict[str, Any] = {"ok": True, **_handle(tf_ops, request)}
        except Failure as exc:
            result = _answer(exc.code, str(exc), exc.facts)
        except MemoryError:
            result = _answer(OUT_OF_MEMORY, "MemoryError")
        except Exception as exc:  # noqa: BLE001 anything the model throws is a load failure
            kind = type(exc).__name__
            result = _answer(LOAD_FAILED, f"{kind}: {exc}", {"error": kind})
        gc.collect()  # a failed load's traceback kept its model alive until now
        result["rss_mb"] = _rss_mb()
        out.write(json.dumps(result, default=str) + "\n")
        if result.get("code") == OUT_OF_MEMORY:
            return  # heap state after MemoryError is not trustworthy: let the parent recycle us


def _import_custom_modules() -> dict[str, str]:
    """Import the operator's KERAS_CUSTOM_OBJECT_MODULES (their `register_keras_serializable`
    decorators run), before confinement and before any upload is seen: trusted code, deployed
    with the function. An import that fails is reported (its loads then fail as load_failed)."""
    import importlib

    status = {}
    for name in filter(None, os.environ.get(KERAS_MODULES_ENV, "").split(",")):
        try:
            importlib.import_module(name)
            status[name] = "imported"
        except Exception as exc:  # noqa: BLE001 reported to the operator's log, not fatal
            status[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            print(f"KERAS_CUSTOM_OBJECT_MODULES: {name}: {status[name]}", file=sys.stderr)
    return status


def _answer(code: str, message: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """A failed request: the code and typed facts (which may reach the record), and our account
    for operators (`message`: logged by the parent, never recorded), bounded."""
    return {"ok": False, "code": code, "facts": facts or {}, "message": message[:DETAIL_LIMIT]}


def _confine() -> dict[str, Any]:
    """The layers, once per worker; what failed to set up is reported, never fatal (the parent
    decides: `SANDBOX_REQUIRED_LAYERS`).

    Reads: the interpreter and its packages, system libraries and the few kernel entries TF
    uses (`confine.read_roots`), of the project checkout only this package, and the worker's
    home: uploads are staged into its inbox (read, remove), scratch and exports are written
    beneath its `tmp` and `out` (the only writable places)."""
    layers: dict[str, Any] = {"rlimits": _LIMITS_SET}
    try:
        from .confine import confine, read_roots

        home = os.environ.get(WRITABLE_ENV) or os.environ["HOME"]
        package = str(Path(__file__).resolve().parents[2])  # `handlers` (or its installed name)
        checkout = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
        layers.update(
            confine(
                [os.path.join(home, d) for d in SCRATCH_DIRS],
                readable=[*read_roots(skip=checkout), package, home],
                removable=[os.path.join(home, INBOX_DIR)],
            )
        )
    except Exception as exc:  # noqa: BLE001 e.g. no ctypes: report, and serve unconfined
        layers["unavailable"] = {"confine": f"{type(exc).__name__}: {exc}"[:300]}
    return layers


def _handle(tf_ops: Any, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "ping":
        return {"pid": os.getpid()}
    if op == "keras":
        release = request.get("release_source") is True
        return tf_ops.load_keras(request["path"], request["export_dir"], release_source=release)
    if op == "saved_model":
        return tf_ops.load_saved_model(request["dir"])
    if op == "fingerprint":
        return tf_ops.check_fingerprint(request["dir"])
    if op == "test" and os.environ.get(TEST_HOOKS_ENV) == "1":
        return _test_action(str(request.get("action", "")), request)
    raise Failure(BAD_REQUEST, f"unknown request {op!r}")


def _test_action(action: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the test suite asks of a live worker: crash it, or try what a hostile model would."""
    if action == "segfault":
        import ctypes

        print(request.get("say", ""), file=sys.stderr, flush=True)  # what a crash leaves behind
        ctypes.string_at(0)
    elif action == "hang":
        time.sleep(3600)
    elif action == "allocate":
        import numpy as np

        chunks = []
        while True:  # untouched pages still count against RLIMIT_DATA: fails fast
            chunks.append(np.empty(256 * _MIB, dtype=np.uint8))
    elif action in _PROBES:
        return {"action": action, **_attempt(_PROBES[action], request)}
    elif action == "threads":
        from .confine import thread_status

        return {"action": action, "threads": thread_status()}
    return {"action": action}


def _attempt(probe: Any, request: dict[str, Any]) -> dict[str, Any]:
    try:
        result = probe(request)
    except OSError as exc:
        return {"blocked": True, "error": f"{type(exc).__name__}: {exc.strerror}"}
    except Exception as exc:  # noqa: BLE001 e.g. TensorFlow's PermissionDeniedError
        return {"blocked": True, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return {"blocked": False, "result": result}


def _write(request: dict[str, Any]) -> int:
    with open(request["path"], "w") as f:
        return f.write("written from the sandbox")


def _read_parent_environ(request: dict[str, Any]) -> str:
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        return f.read().decode(errors="replace")


def _socket(request: dict[str, Any]) -> str:
    import socket

    family = getattr(socket, request.get("family", "AF_INET"))
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        return str(sock.family)


def _exec(request: dict[str, Any]) -> None:
    os.execv(request.get("path", "/bin/true"), ["true"])  # on success the worker is gone


def _link(request: dict[str, Any]) -> None:
    """A link inside the worker's own temp dir to `path` (what a subverted worker would put in
    an export, for the function to read)."""
    target, name = request["path"], os.path.join(os.environ["TMPDIR"], "link")
    (os.symlink if request.get("kind") == "symbolic" else os.link)(target, name)


def _signal_parent(request: dict[str, Any]) -> None:
    os.kill(os.getppid(), 0)  # signal 0: only the permission check


def _tf_write(request: dict[str, Any]) -> str:
    """TensorFlow's WriteFile op, run by TF's executor inside a tf.function (what a graph op
    would do; the static op check rejects such graphs before the sandbox ever sees them)."""
    import tensorflow as tf

    @tf.function
    def write() -> Any:
        tf.io.write_file(request["path"], "written by a graph op")
        return tf.constant(1)

    return str(write().numpy())


def _tf_read(request: dict[str, Any]) -> str:
    """TensorFlow's ReadFile op run by TF's executor: what a graph that got past the static
    check would do to read a file (and carry it out in an error message)."""
    import tensorflow as tf

    @tf.function
    def read() -> Any:
        return tf.io.read_file(request["path"])

    return read().numpy().decode(errors="replace")


def _keras_unsafe(request: dict[str, Any]) -> str:
    """The `lookup` layer of a `.keras` config built with Keras' safe_mode off (as if it were
    bypassed): its vocabulary, which the config may name as a file to read."""
    import zipfile

    import keras

    with zipfile.ZipFile(request["path"]) as archive:
        config = json.loads(archive.read("config.json"))
    layer = next(x for x in config["config"]["layers"] if x.get("name") == "lookup")
    built = keras.saving.deserialize_keras_object(layer, safe_mode=False)
    return " ".join(str(word) for word in built.get_vocabulary())


def _read(request: dict[str, Any]) -> str:
    with open(request["path"], encoding="utf-8", errors="replace") as f:
        return f.read()


_PROBES = {
    "read": _read,
    "tf_read": _tf_read,
    "keras_unsafe": _keras_unsafe,
    "write": _write,
    "read_parent_environ": _read_parent_environ,
    "socket": _socket,
    "exec": _exec,
    "signal_parent": _signal_parent,
    "link": _link,
    "tf_write": _tf_write,
}


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
