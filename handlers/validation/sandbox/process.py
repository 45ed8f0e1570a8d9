"""Parent side of the sandboxed loader: one reusable worker process speaking JSON lines.

The worker (`handlers.validation.sandbox.worker`) gets a scrubbed environment, a private temp dir (removed
when it stops), its own session (so a timeout kills the whole process group), and resource limits
and confinement it applies to itself (`confine`: it may write only beneath its private dir, so an
export is written there and moved to where the caller asked, and a source it may delete is moved
in first). A crash, timeout or out-of-memory becomes `Rejected(sandbox.*)` and the worker is
replaced on next use; it is also recycled after `max_uses` requests or when its RSS grows past
half the memory budget. Before starting one, this process makes itself non-dumpable
(`handlers.hardening`). What the worker prints goes to the function's log only, never a record.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import Rejected, SandboxLayerMissing, TransientError
from ...hardening import harden_function_process, is_dumpable
from ...logs import get_logger
from .protocol import (
    DETAIL_LIMIT,
    INBOX_DIR,
    KERAS_MODULES_ENV,
    MEMORY_ENV,
    OUT_OF_MEMORY,
    SCRATCH_DIRS,
    TEST_HOOKS_ENV,
    WRITABLE_ENV,
)

log = get_logger(__name__)

_PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the directory holding `handlers/`
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_STARTUP_SECONDS = 120.0
_UPLOAD_KEYS = {"keras": "path", "saved_model": "dir", "fingerprint": "dir"}  # what each op reads


def default_memory_mb() -> int:
    """80% of the cgroup memory limit, or of physical memory when there is none."""
    limit = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 60:
            limit = int(raw)
            break
    if limit is None:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(256, int(limit * 0.8) // 1024**2)


class Sandbox:
    """One worker at a time; `request()` is serialised by a lock (the worker is single-threaded)."""

    def __init__(
        self,
        *,
        memory_mb: int,
        timeout_seconds: float,
        max_uses: int,
        temp_dir: str | None,
        required_layers: tuple[str, ...] = (),
        keras_modules: tuple[str, ...] = (),
    ) -> None:
        self.memory_mb = memory_mb
        self.required_layers = required_layers
        self.keras_modules = keras_modules
        self.timeout_seconds = timeout_seconds
        self.max_uses = max_uses
        self._temp_dir = temp_dir
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._home: Path | None = None
        self._buffer = b""
        self._ready = False
        self._started = 0.0
        self._worker_layers: dict[str, Any] = {}
        self._parent_hardening: dict[str, Any] | None = None
        self.uses = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    @property
    def layers(self) -> dict[str, Any]:
        """The containment layers of the current worker, as it reported them when ready (before
        it saw any upload), plus this process' own non-dumpable state; a layer the platform
        lacks is False, with why under "unavailable"."""
        layers: dict[str, Any] = {"non_dumpable_parent": not is_dumpable(), **self._worker_layers}
        why = dict(layers.get("unavailable") or {})
        if not layers["non_dumpable_parent"]:
            why["non_dumpable_parent"] = (self._parent_hardening or {}).get("why", "not set")
        if why:
            layers["unavailable"] = why
        return layers

    def start(self) -> None:
        """Start the worker if none is running; returns at once (TF imports in the background)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return
            self.stop()
            if self._parent_hardening is None:
                self._parent_hardening = harden_function_process()
            self._home = Path(tempfile.mkdtemp(prefix="registrar-sandbox-", dir=self._temp_dir))
            for sub in (*SCRATCH_DIRS, INBOX_DIR):
                (self._home / sub).mkdir()
            stderr = (self._home / "worker.log").open("wb")
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=self._home / "tmp",
                env=self._env(),
                start_new_session=True,  # own process group: a timeout kills all of it
                close_fds=True,
            )
            stderr.close()
            self._buffer, self._ready, self.uses = b"", False, 0
            self._worker_layers = {}
            self._started = time.monotonic()

    def request(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        """Send one request and return the worker's JSON answer (ok or not)."""
        with self._lock:
            self.start()
            proc = self._proc
            assert proc is not None and proc.stdin is not None
            if not self._ready:
                deadline = self._started + _STARTUP_SECONDS
                self._on_ready(self._read(deadline=deadline, what=what, startup=True), what)
            self._require_layers(what)  # before the worker sees anything of the upload
            self.uses += 1
            payload, staged = self._stage(payload)
            try:
                proc.stdin.write(json.dumps(payload).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                self._fail("sandbox.crash", what)
            answer = self._read(deadline=time.monotonic() + self.timeout_seconds, what=what)
            try:
                self._unstage(staged, ok=answer.get("ok") is True)
            except Rejected:
                self.stop()  # only a subverted worker writes links: never reuse it
                raise
            if answer.get("code") == OUT_OF_MEMORY:
                self.stop()
            elif self.uses >= self.max_uses or answer.get("rss_mb", 0) > self.memory_mb // 2:
                log.info("recycling sandbox worker after %d uses", self.uses)
                self.stop()
            return answer

    def _on_ready(self, hello: dict[str, Any], what: str) -> None:
        if hello.get("ready") is not True:  # e.g. out of memory importing TensorFlow
            code = OUT_OF_MEMORY if hello.get("code") == OUT_OF_MEMORY else "sandbox.crash"
            self._fail(code, what, startup=True)
        layers = hello.get("layers")
        self._worker_layers = layers if isinstance(layers, dict) else {}
        self._ready = True
        missing = self.layers.get("unavailable")
        log.log(
            logging.WARNING if missing else logging.INFO,
            "sandbox worker %s ready after %.1f s; layers set up in %s ms%s: %s",
            hello.get("pid"),
            time.monotonic() - self._started,
            hello.get("confine_ms"),
            f"; did not hold: {', '.join(missing)}" if missing else "",
            json.dumps(self.layers, sort_keys=True)[:DETAIL_LIMIT],
        )
        modules = hello.get("keras_modules") or {}
        failed = (
            {k: v for k, v in modules.items() if v != "imported"}
            if isinstance(modules, dict)
            else {}
        )
        if failed:
            log.error(
                "KERAS_CUSTOM_OBJECT_MODULES failed to import in the sandbox; models using their "
                "objects will be rejected: %s",
                json.dumps(failed)[:DETAIL_LIMIT],
            )

    def missing_layers(self) -> dict[str, str]:
        """The required layers (SANDBOX_REQUIRED_LAYERS) that do not hold: name -> why."""
        layers = self.layers
        why = layers.get("unavailable") or {}
        missing = {}
        for name in self.required_layers:
            key = "non_dumpable_parent" if name == "non_dumpable" else name
            if not layers.get(key):
                missing[name] = str(why.get(key) or why.get("confine") or "not reported")[:300]
        return missing

    def _require_layers(self, what: str) -> None:
        missing = self.missing_layers()
        if missing:
            names = ", ".join(missing)
            raise SandboxLayerMissing(
                f"the sandbox cannot validate {what}: required layer(s) {names} did not hold on "
                f"this platform ({'; '.join(f'{k}: {v}' for k, v in missing.items())}). Nothing "
                "was validated; the upload is redelivered until the platform provides them "
                "(SANDBOX_REQUIRED_LAYERS names the required layers).",
                layers=missing,
            )

    def _stage(self, payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
        """The worker reads only its home and writes only beneath its scratch: an export goes to
        a slot in `out/` (moved to `export_dir` afterwards); the upload it loads (`path` or `dir`)
        is staged into a fresh slot in its inbox, `in/`: moved there when the worker may delete
        it (`release_source`: a rename on the same file system), else hard-linked (a copy on
        another file system), so the caller's files stay where they are."""
        assert self._home is not None
        staged: dict[str, Path] = {}
        if payload.get("export_dir"):
            target = Path(payload["export_dir"])
            slot = Path(tempfile.mkdtemp(dir=self._home / "out"))
            staged.update(slot=slot, export=slot / target.name, target=target)
            payload = {**payload, "export_dir": str(slot / target.name)}
        key = _UPLOAD_KEYS.get(payload.get("op"))
        if key is not None and payload.get(key):
            source = Path(payload[key])
            inbox = Path(tempfile.mkdtemp(dir=self._home / INBOX_DIR))
            staged["inbox"] = inbox
            moved = False
            if payload.get("release_source"):
                try:
                    os.rename(source, inbox / source.name)
                    moved = True
                except OSError:
                    payload = {**payload, "release_source": False}
            if not moved:
                _link_tree(source, inbox / source.name)
            payload = {**payload, key: str(inbox / source.name)}
        return payload, staged

    @staticmethod
    def _unstage(staged: dict[str, Path], *, ok: bool) -> None:
        if ok and "export" in staged and staged["export"].exists():
            _only_plain_files(staged["export"])
            target = staged["target"]
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged["export"]), str(target))  # a rename on the same file system
        for key in ("slot", "inbox"):
            if key in staged:
                shutil.rmtree(staged[key], ignore_errors=True)

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                if proc.poll() is None:
                    try:
                        proc.stdin.close()  # type: ignore[union-attr]
                        proc.wait(timeout=2)
                    except (OSError, subprocess.TimeoutExpired):
                        _kill_group(proc)
                for stream in (proc.stdin, proc.stdout):
                    if stream is not None:
                        stream.close()
            if self._home is not None:
                shutil.rmtree(self._home, ignore_errors=True)
                self._home = None

    def _env(self) -> dict[str, str]:
        assert self._home is not None
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        env.update(
            HOME=str(self._home),
            TMPDIR=str(self._home / "tmp"),
            KERAS_HOME=str(self._home / "keras"),
            KERAS_BACKEND="tensorflow",
            PYTHONPATH=str(_PROJECT_ROOT),
            PYTHONDONTWRITEBYTECODE="1",
            OPENBLAS_NUM_THREADS="1",  # no BLAS thread before the worker confines itself
            TF_CPP_MIN_LOG_LEVEL="2",
            CUDA_VISIBLE_DEVICES="",
            # No credentials are passed; also point metadata-server lookups at nothing.
            NO_GCE_CHECK="True",
            GCE_METADATA_HOST="127.0.0.1:9",
            GCE_METADATA_IP="127.0.0.1:9",
            **{MEMORY_ENV: str(self.memory_mb), WRITABLE_ENV: str(self._home)},
        )
        if self.keras_modules:
            env[KERAS_MODULES_ENV] = ",".join(self.keras_modules)
        if os.environ.get(TEST_HOOKS_ENV) == "1":
            env[TEST_HOOKS_ENV] = "1"
        return env

    def _read(self, *, deadline: float, what: str, startup: bool = False) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._fail("sandbox.timeout", what, startup=startup)
                if not sel.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self._fail(_exit_code(proc, self._log_tail()), what, startup=startup)
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            answer = json.loads(line)
        except ValueError:
            self._fail("sandbox.crash", what)
        if not isinstance(answer, dict):
            self._fail("sandbox.crash", what)
        return answer

    def _log_tail(self) -> str:
        try:
            return (self._home / "worker.log").read_bytes()[-4000:].decode(errors="replace")  # type: ignore[operator]
        except OSError:
            return ""

    def _fail(self, code: str, what: str, *, startup: bool = False) -> None:
        proc = self._proc
        tail = self._log_tail().strip().splitlines()[-5:]
        if proc is not None:
            _kill_group(proc)
        rc = proc.returncode if proc is not None else None
        self.stop()
        # The worker's output can quote the model (or what it read): the log, never the record.
        log.warning(
            "sandbox worker %s failed (%s, exit status %s) %s; its last output: %s",
            proc.pid if proc is not None else None,
            code,
            rc,
            "while starting" if startup else f"with {what}",
            " | ".join(tail)[-DETAIL_LIMIT:],
        )
        where = "while starting the loader" if startup else f"while loading {what}"
        if code == "sandbox.timeout":
            text = (
                f"The sandboxed loader did not finish within {self.timeout_seconds:.0f} s "
                f"{where} (VALIDATION_TIMEOUT_SECONDS). The model is too slow or too big to load, "
                "or it hangs on purpose."
            )
        elif code == OUT_OF_MEMORY:
            text = (
                f"The sandboxed loader ran out of memory ({self.memory_mb} MiB, "
                f"VALIDATION_MEMORY_MB) {where}. Use a larger instance or a smaller model."
            )
        else:
            text = (
                f"The sandboxed loader crashed {where} (exit status {rc}). TensorFlow could not "
                "load this artifact safely; check that it was saved by a supported version."
            )
        text += " The loader's own output is in the function's log."
        if startup and code != "sandbox.timeout":
            # No artifact has been sent yet: the environment is at fault, not the upload.
            raise TransientError(text, code=f"{code}_at_startup")
        raise Rejected(text, code=code)


def _link_tree(source: Path, target: Path) -> None:
    """`source` (a file or a directory tree) at `target`: hard links where the file system
    allows (no bytes copied), copies elsewhere; symlinks stay symlinks (the worker's Landlock
    decides what their targets let it read)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, target, symlinks=True, copy_function=link_or_copy)
    else:
        link_or_copy(str(source), str(target))


def _only_plain_files(root: Path) -> None:
    """An export the function will read and publish: directories and regular files with one
    link only. A symlink or hard link would make the function read a file on the worker's
    behalf (its own /proc/self/environ, another upload); the worker cannot create them when
    its layers hold, so one here means they did not."""
    paths = [root]
    for folder, dirs, files in os.walk(root):  # does not follow symlinks
        paths += [Path(folder, name) for name in (*dirs, *files)]
    for path in paths:
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) or (stat.S_ISREG(info.st_mode) and info.st_nlink == 1):
            continue
        shutil.rmtree(root, ignore_errors=True)
        raise Rejected(
            "The sandboxed loader's SavedModel export holds a link or special file, which "
            "TensorFlow never writes: the loader did not behave as TensorFlow, so this upload "
            "is refused. Re-save the model with built-in layers only.",
            code="sandbox.bad_export",
        )


def _exit_code(proc: subprocess.Popen[bytes], tail: str) -> str:
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return "sandbox.crash"
    oom_markers = ("MemoryError", "bad_alloc", "Cannot allocate memory", "OOM")
    if rc == -signal.SIGKILL or any(m in tail for m in oom_markers):
        return OUT_OF_MEMORY
    return "sandbox.crash"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("sandbox worker %d did not exit after SIGKILL", proc.pid)


# `-I` (isolated mode) ignores PYTHON* variables and user site-packages, so the project root is
# put on sys.path explicitly before running the worker module.
# The worker's module path follows this package's name: `handlers` in the function's source
# layout, the distribution's name when installed with pip.
_WORKER_MODULE = f"{__package__}.worker"
_BOOT = (
    "import importlib, os, sys; sys.path.insert(0, os.environ['PYTHONPATH']); "
    f"importlib.import_module({_WORKER_MODULE!r}).main()"
)
