"""Each containment layer on its own, in a small child process without TensorFlow: what it stops
and what it does not (the README's security model says no more than these show), and the
function process' non-dumpable setting. The whole worker is tested in test_containment.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from handlers.hardening import harden_function_process, is_dumpable
from handlers.validation.sandbox import confine

ROOT = Path(__file__).resolve().parents[3]
ABI = confine.landlock_abi()
IS_ROOT = os.geteuid() == 0

_PROBE = r"""
import errno, json, os, socket, sys, threading
sys.path.insert(0, sys.argv[1])
import handlers.validation.sandbox.confine as c
layer, home, outside, port = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
canary = sys.argv[6]
applied = {
    "none": lambda: None,
    "landlock": lambda: (c._no_new_privs(), c._landlock(c._grants([home], [], []))),
    "caps": c._drop_capabilities,
    "seccomp": lambda: (c._no_new_privs(), c._seccomp()),
    "all": lambda: c.confine([home]),
    # A platform without Landlock (old kernel, gVisor) and without a syscall table for seccomp.
    "lacking": lambda: (
        setattr(c, "_LANDLOCK_CREATE_RULESET", 100000), setattr(c, "_ARCH", None),
        c.confine([home]),
    )[-1],
}[layer]()

def attempt(f):
    try:
        f()
        return "allowed"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def connect():
    with socket.socket() as s:
        s.connect(("127.0.0.1", port))

def read_environ():
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        f.read()

def in_thread():  # a thread started after the layers: same answer as the main thread
    box = []
    t = threading.Thread(target=lambda: box.append(attempt(lambda: open(outside, "w").close())))
    t.start(); t.join()
    return box[0]

results = {
    "layers": applied if isinstance(applied, dict) else None,
    "write_outside": attempt(lambda: open(outside, "w").close()),
    "write_outside_from_thread": in_thread(),
    "write_inside": attempt(lambda: open(os.path.join(home, "f"), "w").close()),
    "symlink_inside": attempt(lambda: os.symlink("/proc/self/environ", os.path.join(home, "l"))),
    "read_etc": attempt(lambda: open("/etc/hostname").read()),
    "read_canary": attempt(lambda: open(canary).read()),
    "list_canary_dir": attempt(lambda: os.listdir(os.path.dirname(canary))),
    "read_stdlib": attempt(lambda: open(os.path.join(os.path.dirname(os.__file__), "decimal.py")).read()),
    "read_dev_urandom": attempt(lambda: open("/dev/urandom", "rb").read(8)),
    "read_own_status": attempt(lambda: open("/proc/self/status").read()),
    "read_parent_environ": attempt(read_environ),
    "signal_parent": attempt(lambda: os.kill(os.getppid(), 0)),
    "signal_self": attempt(lambda: os.kill(os.getpid(), 0)),
    "socket": attempt(lambda: socket.socket().close()),
    "unix_socket": attempt(lambda: socket.socket(socket.AF_UNIX).close()),
    "connect_tcp": attempt(connect),
    "setsid": attempt(os.setsid),
}
print(json.dumps(results), flush=True)
try:
    os.execv("/bin/true", ["true"])
except OSError as e:
    print(json.dumps({"exec": errno.errorcode.get(e.errno)}), flush=True)
"""


@pytest.fixture(scope="module")
def listener():
    """A TCP port on loopback that accepts (so 'connect' is a real connection when allowed)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def _probe(layer: str, tmp_path: Path, port: int) -> dict:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    outside = tmp_path / f"outside-{layer}"
    canary = tmp_path / "canary" / "secret.txt"  # beside the sandbox's home, outside it
    canary.parent.mkdir(exist_ok=True)
    canary.write_text("registrar-canary")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _PROBE,
            str(ROOT),
            layer,
            str(home),
            str(outside),
            str(port),
            str(canary),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    lines = out.stdout.strip().splitlines()
    assert lines, out.stderr[-2000:]
    results = json.loads(lines[0])
    results["exec"] = json.loads(lines[1])["exec"] if len(lines) > 1 else "allowed"
    results["outside_exists"] = outside.exists()
    return results


def test_without_layers_everything_is_allowed(tmp_path, listener):
    """The control: the probes themselves work, so a 'blocked' below is the layer's doing."""
    got = _probe("none", tmp_path, listener)
    assert {k for k, v in got.items() if v != "allowed"} == {"layers", "outside_exists"}, got


@pytest.mark.skipif(ABI < 1, reason="kernel without Landlock")
def test_landlock_alone(tmp_path, listener):
    got = _probe("landlock", tmp_path, listener)
    assert got["write_outside"] == "EACCES" and not got["outside_exists"]
    assert got["write_outside_from_thread"] == "EACCES"
    assert got["write_inside"] == got["read_stdlib"] == got["read_dev_urandom"] == "allowed"
    assert got["read_own_status"] == "allowed"
    # Reads, too, only where it was allowed: not /etc, not a file beside its home.
    assert got["read_etc"] == got["read_canary"] == got["list_canary_dir"] == "EACCES"
    assert got["symlink_inside"] == "EACCES"  # files and directories only
    assert got["exec"] == "EACCES"  # no EXECUTE right anywhere
    assert got["connect_tcp"] == ("EACCES" if ABI >= 4 else "allowed")
    assert got["signal_parent"] == ("EPERM" if ABI >= 6 else "allowed")
    assert got["signal_self"] == "allowed"
    # What it does not stop on its own: sockets (other than TCP connect/bind). Only its own
    # /proc entries are readable, so the parent's /proc/<pid>/environ is closed too.
    assert got["socket"] == got["unix_socket"] == "allowed"
    assert got["read_parent_environ"] == "EACCES"


@pytest.mark.skipif(not IS_ROOT, reason="capabilities only matter for root")
def test_dropping_capabilities_alone(tmp_path, listener):
    """As root, the probe reads its (root, capable) parent's environment; without capabilities
    it cannot: the kernel wants the target's capabilities to be a subset of the reader's."""
    got = _probe("caps", tmp_path, listener)
    assert got["read_parent_environ"] in ("EACCES", "EPERM")
    # Same uid: writing its own files and signalling the parent stay possible with caps alone.
    assert got["write_outside"] == got["signal_parent"] == got["socket"] == "allowed"


@pytest.mark.skipif(confine._ARCH is None, reason="no seccomp syscall table for this machine")
def test_seccomp_alone(tmp_path, listener):
    got = _probe("seccomp", tmp_path, listener)
    blocked = ("socket", "unix_socket", "connect_tcp", "exec", "setsid", "signal_parent")
    for probe in (*blocked, "symlink_inside"):
        assert got[probe] == "EPERM", (probe, got)
    assert got["signal_self"] == got["write_inside"] == got["write_outside"] == "allowed"
    assert got["write_outside_from_thread"] == "allowed"  # threads work (clone3 -> clone)


def test_all_layers(tmp_path, listener):
    got = _probe("all", tmp_path, listener)
    layers = got.pop("layers")
    assert layers["seccomp"] is True and layers["no_new_privs"] is True
    assert layers["landlock"] == (f"abi {ABI}" if ABI else False)
    assert layers["caps_dropped"] is True
    assert layers["securebits"] is IS_ROOT  # locking them needs CAP_SETPCAP
    if not IS_ROOT:
        assert "PR_SET_SECUREBITS" in layers["unavailable"]["securebits"]
    allowed = {k for k, v in got.items() if v == "allowed"}
    readable = {"read_stdlib", "read_dev_urandom", "read_own_status"}
    if ABI:
        assert allowed == {"write_inside", "signal_self", *readable}, got
    assert got["outside_exists"] is False


def test_a_layer_the_platform_lacks_is_reported_with_why(tmp_path, listener):
    got = _probe("lacking", tmp_path, listener)
    layers = got.pop("layers")
    assert layers["landlock"] is False and layers["seccomp"] is False
    assert "Landlock" in layers["unavailable"]["landlock"]
    assert "no syscall table" in layers["unavailable"]["seccomp"]
    assert layers["caps_dropped"] is True and layers["no_new_privs"] is True
    assert got["write_outside"] == "allowed"  # nothing pretends to hold


def test_seccomp_program_jumps_stay_in_range():
    for machine in ("x86_64", "aarch64"):
        arch = confine._arch(machine)
        program = confine.seccomp_program(arch, own_pid=4242)
        for i, (code, jt, jf, _k) in enumerate(program):
            if code & 0x07 == 0x05:  # BPF_JMP
                assert i + 1 + max(jt, jf) < len(program)
        assert program[-1][0] == 0x06  # ends with a return


def test_function_process_is_non_dumpable():
    assert harden_function_process() == {"non_dumpable": True}
    assert is_dumpable() is False
    assert harden_function_process() == {"non_dumpable": True}  # idempotent


_PARENT = r"""
import subprocess, sys
# hardening.py and the leaf it imports, copied to a directory any uid can read (argv[1]), not an
# import from the checkout: uid 65534 may not be able to read a checkout in a private (0700)
# directory, and the test is about the process, not the path.
sys.path.insert(0, sys.argv[1])
import handlers.hardening as module
if sys.argv[2] == "harden":
    assert module.harden_function_process() == {"non_dumpable": True}
child = "import os\ntry:\n open(f'/proc/{os.getppid()}/environ','rb').read(); print('allowed')\nexcept OSError as e: print(e.errno)"
subprocess.run([sys.executable, "-c", child])
"""
NOBODY = 65534


def _unreachable_by_others(path: Path) -> str | None:
    """Why a process of another, unprivileged uid cannot run `path`, or None if it can."""
    real = path.resolve()
    for directory in (*reversed(real.parents), real):
        mode = directory.stat().st_mode
        needed = 0o001 if directory != real else 0o005
        if mode & needed != needed:
            return f"{real} is not usable by uid {NOBODY}: {directory} has mode {oct(mode & 0o777)}"
    return None


def _interpreter() -> Path:
    """A Python that needs nothing from the checkout or its venv: the venv's base interpreter."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    return Path("/usr/bin/python3") if Path("/usr/bin/python3").exists() else base


@pytest.mark.skipif(not IS_ROOT or not shutil.which("setpriv"), reason="needs root and setpriv")
@pytest.mark.parametrize("mode", ["plain", "harden"])
def test_non_dumpable_parent_without_root(mode):
    """Where the function and the worker share a non-root uid and no capabilities (each could
    read the other's /proc entries), non-dumpable is what keeps the parent's environment closed."""
    python = _interpreter()
    if why := _unreachable_by_others(python):
        pytest.skip(why)
    readable = Path(tempfile.mkdtemp(prefix="registrar-hardening-"))
    try:
        readable.chmod(0o755)
        package = readable / "handlers"
        package.mkdir(mode=0o755)
        (package / "__init__.py").write_text("")
        for leaf in ("hardening.py", "logs.py"):  # hardening imports only the logs leaf
            shutil.copy(ROOT / "handlers" / leaf, package / leaf)
        for path in package.iterdir():
            path.chmod(0o644)
        out = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all", str(python), "-c", _PARENT,
             str(readable), mode],
            capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
    finally:
        shutil.rmtree(readable, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = "allowed" if mode == "plain" else str(errno.EACCES)
    assert out.stdout.strip() == expected, out.stderr[-2000:]
