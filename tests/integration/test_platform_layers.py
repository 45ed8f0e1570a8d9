"""The function on a platform like Cloud Run's: end to end over HTTP, as an unprivileged non-root
user (nobody when the suite runs as root, else the current user), on a kernel that answers the
Landlock syscalls with ENOSYS (gVisor does; here a seccomp filter installed before the server
starts makes the real kernel say so, so nothing in the product is told it is a test).

- Landlock unavailable: the upload still registers; the start-up WARNING says so (the line the
  `landlock-missing` log metric counts) and the record notes it in `validation.sandbox_layers`.
- A required layer unavailable (seccomp, the same way): the event is answered 503 with an ERROR
  `failed` line naming the layer (what the failure alert counts), nothing is registered or
  recorded as final; once the platform provides the layer, the redelivered event registers.

As root the checkout may be unreadable to nobody (a 0700 directory): the function's source
(`main.py`, `handlers/`) is copied to a world-readable temp dir, and the interpreter is a
world-readable one (this one, or the system's Python of the same version) in a throwaway venv
that sees this environment's packages."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from tests.conftest import Bucket, Models, Services, Vertex, function_env
from tests.terraform.logfilter import matches

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
NOBODY = 65534

# Installed by the server's launcher before functions-framework starts: the named syscalls
# answer ENOSYS in this process and every child (the sandbox worker included).
_LAUNCH = r"""
import ctypes, json, os, platform, struct, sys
deny = json.loads(sys.argv[1])
numbers = {"x86_64": (0xC000003E, {"landlock": (444, 445, 446), "seccomp": (317,)}),
           "aarch64": (0xC00000B7, {"landlock": (444, 445, 446), "seccomp": (277,)})}
arch, table = numbers[platform.machine()]
nrs = [n for name in deny for n in table[name]]
LD, JEQ, RET = 0x20, 0x15, 0x06
prog = [(LD, 0, 0, 4), (JEQ, 1, 0, arch), (RET, 0, 0, 0x7FFF0000), (LD, 0, 0, 0)]
for nr in nrs:
    prog.append((JEQ, 0, 1, nr))
    prog.append((RET, 0, 0, 0x00050000 | 38))  # SECCOMP_RET_ERRNO | ENOSYS
prog.append((RET, 0, 0, 0x7FFF0000))
raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
buf = ctypes.create_string_buffer(raw)
fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS: needed to filter without root
fbuf = ctypes.create_string_buffer(fprog)
assert libc.prctl(22, 2, fbuf, 0, 0) == 0, os.strerror(ctypes.get_errno())  # PR_SET_SECCOMP
sys.argv = ["functions-framework", *sys.argv[2:]]
from functions_framework._cli import _cli
_cli()
"""


@dataclass
class Runtime:
    """What an unprivileged server needs: a readable source copy, a usable interpreter."""

    source: Path
    python: Path
    user: tuple[int, int] | None  # (uid, gid) to switch to, None: stay the current user
    scratch: Path


def _readable_python(where: Path) -> Path:
    """This interpreter if nobody can run it, else a venv (in `where`) over the system Python of
    the same version that sees this environment's site-packages."""
    if not IS_ROOT or _world_runnable(Path(sys.executable)):
        return Path(sys.executable)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = shutil.which(version, path="/usr/bin:/usr/local/bin:/bin")
    if system is None:
        pytest.skip(f"no {version} the unprivileged user can run")  # environment, not product
    venv = where / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()
    )  # fmt: skip
    if not _world_runnable(packages, file_too=False):
        # the checkout (and its .venv) sits in a private directory, as after `git clone` into a
        # 0700 one: hard-link the installed packages into `where` (same file system, no copying
        # of bytes; file modes already let others read them)
        linked = where / "site-packages"
        try:
            shutil.copytree(packages, linked, copy_function=os.link, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        except OSError as exc:  # another file system: nothing to link to
            pytest.skip(f"{packages} is not readable by uid {NOBODY} and cannot be linked: {exc}")
        packages = linked
    (site / "shared-environment.pth").write_text(f"{packages}\n")
    return venv / "bin" / "python"


def _world_runnable(path: Path, *, file_too: bool = True) -> bool:
    """Whether any user can execute `path` (every directory on its real path searchable; with
    `file_too=False`, only reach it). Asked of the file system, not of a trial run: setpriv
    itself may exec what its target cannot."""
    real = path.resolve()
    dirs_ok = all(p.stat().st_mode & stat.S_IXOTH for p in real.parents)
    return dirs_ok and (not file_too or bool(real.stat().st_mode & stat.S_IXOTH))


def _as_nobody() -> list[str]:
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--"]  # fmt: skip


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    if IS_ROOT and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    top = Path(tempfile.mkdtemp(prefix="registrar-platform-"))
    try:
        top.chmod(0o755)
        source = top / "src"
        source.mkdir()
        shutil.copy2(ROOT / "main.py", source / "main.py")
        shutil.copytree(ROOT / "handlers", source / "handlers",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        python = _readable_python(top)
        scratch = top / "scratch"
        scratch.mkdir()
        for path in [top, *top.rglob("*")]:  # readable (and the scratch writable) for nobody
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                path.chmod(mode | stat.S_IRGRP | stat.S_IROTH | (0o055 if path.is_dir() else 0))
        if IS_ROOT:
            os.chown(scratch, NOBODY, NOBODY)
        yield Runtime(source, python, (NOBODY, NOBODY) if IS_ROOT else None, scratch)
    finally:
        shutil.rmtree(top, ignore_errors=True)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def post(self, resource: dict[str, Any], event_id: str | None = None) -> int:
        headers, body = binary_event(resource, event_id)
        return requests.post(self.url, data=body, headers=headers, timeout=300).status_code

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(runtime: Runtime, services: Services, name: str, deny: list[str], **env: str) -> Server:
    port = stack.free_port()
    temp = runtime.scratch / name
    temp.mkdir()
    if runtime.user:
        os.chown(temp, *runtime.user)
    environment = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "TEMP_DIR": str(temp),
        "HOME": str(temp),
        "LOG_LEVEL": "INFO",
        **env,
    }
    environment.pop("REGISTRAR_SANDBOX_TEST_HOOKS", None)  # the product as deployed
    args = [str(runtime.python), "-c", _LAUNCH, json.dumps(deny), "--target", "register_model",
            "--signature-type", "cloudevent", "--source", str(runtime.source / "main.py"),
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    if runtime.user:
        args = [*_as_nobody(), *args]
    log = runtime.scratch / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=runtime.scratch, env=environment, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        stack.wait_http(server.url, timeout=120, proc=proc)
    except RuntimeError:
        server.stop()
        raise AssertionError(log.read_text(errors="replace")[-3000:]) from None
    return server


@pytest.fixture(scope="module")
def bucket(services: Services) -> Bucket:
    return Bucket(services.storage_url, f"platform-{os.getpid()}")


@pytest.fixture(scope="module")
def vertex(services: Services) -> Vertex:
    handle = Vertex(services.vertex_url)
    handle.reset()
    return handle


@pytest.fixture(scope="module")
def gvisor_like(runtime: Runtime, services: Services) -> Iterator[Server]:
    """No Landlock (ENOSYS), unprivileged: Cloud Run's first generation as far as we can tell."""
    server = _start(runtime, services, "no-landlock", ["landlock"])
    yield server
    server.stop()


def _record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any] | None:
    name = f"registrar-state/uploads/{resource['name']}/g{resource['generation']}.json"
    return bucket.read_json(name) if name in bucket.names(name) else None


def test_runs_unprivileged(gvisor_like: Server) -> None:
    uid = int(Path(f"/proc/{gvisor_like.proc.pid}/status").read_text().split("Uid:")[1].split()[1])
    assert uid != 0 and uid == (NOBODY if IS_ROOT else os.geteuid())


def test_without_landlock_the_upload_registers_with_a_warning_and_a_note(
    gvisor_like: Server, bucket: Bucket, vertex: Vertex, models: Models, module_tf: Any
) -> None:
    resource = bucket.upload(models.keras_a, "models/no-landlock/v1/model.keras")
    assert gvisor_like.post(resource) == 200, gvisor_like.log.read_text()[-3000:]
    assert vertex.models("no-landlock")
    record = _record(bucket, resource)
    assert record is not None and record["state"] == "registered", record
    layers = record["validation"]["sandbox_layers"]
    assert layers["landlock"] is False
    assert "Function not implemented" in layers["unavailable"]["landlock"]
    for held in ("seccomp", "no_new_privs", "non_dumpable_parent", "rlimits", "caps_dropped"):
        assert layers[held] is True, (held, layers)
    assert layers["securebits"] is False  # not root: refused, and said so
    lines = gvisor_like.lines()
    warning = [x for x in lines if x.get("sandbox_layer_missing") == "landlock"]
    assert len(warning) == 1 and warning[0]["severity"] == "WARNING", warning
    entry = {"jsonPayload": warning[0], "severity": "WARNING", **module_tf["resource"]}
    assert matches(module_tf["landlock_filter"], entry)  # the log metric counts it
    assert not matches(module_tf["failures_filter"], entry)  # and it pages no one
    assert not [x for x in lines if x.get("severity") in ("ERROR", "CRITICAL")], lines


def test_a_missing_required_layer_is_redelivered_until_the_platform_has_it(
    runtime: Runtime,
    services: Services,
    gvisor_like: Server,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
    module_tf: Any,
) -> None:
    server = _start(runtime, services, "no-seccomp", ["landlock", "seccomp"])
    try:
        resource = bucket.upload(models.keras_b, "models/no-seccomp/v1/model.keras")
        for _ in range(2):  # every delivery, not just the first
            assert server.post(resource, event_id="evt-no-seccomp") == 503
        failed = [x for x in server.lines() if x.get("outcome") == "failed"]
        assert len(failed) == 2, server.log.read_text()[-3000:]
        for line in failed:
            assert line["severity"] == "ERROR" and line["reason"] == "sandbox.layer_missing"
            assert list(line["missing_layers"]) == ["seccomp"], line
            assert "seccomp" in line["message"]
            entry = {"jsonPayload": line, "severity": "ERROR", **module_tf["resource"]}
            assert matches(module_tf["failures_filter"], entry)  # the failure alert counts it
        assert vertex.models("no-seccomp") == []
        assert [n for n in bucket.names("registered/") if "/no-seccomp/" in n] == []
        record = _record(bucket, resource)
        assert record is None or record.get("state") not in ("registered", "rejected"), record
    finally:
        server.stop()
    # The platform provides seccomp again: the redelivered event registers.
    assert gvisor_like.post(resource, event_id="evt-no-seccomp") == 200
    assert vertex.models("no-seccomp")


@pytest.fixture(scope="module")
def module_tf() -> dict[str, Any]:
    """The log-based metrics' filters, rendered for a service named `registrar`."""
    from tests.terraform.tfparse import load_module

    module = load_module()
    name = "registrar"
    logs = f'resource.type="cloud_run_revision" AND resource.labels.service_name="{name}"'
    metric = module["resource"]["google_logging_metric"]["landlock_missing"]["filter"]
    failures = module["locals"]["failures_filter"]

    def render(text: str) -> str:
        text = text.replace("${local.function_logs}", logs)
        text = text.replace("${local.request_log}", "projects/p/logs/run.googleapis.com%2Frequests")
        return text.replace('\\"', '"')

    return {
        "landlock_filter": render(metric),
        "failures_filter": f"{logs} AND {render(failures)}",
        "resource": {
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": name}},
            "logName": "projects/p/logs/run.googleapis.com%2Fstdout",
        },
    }
