"""Each layer is reported truthfully on both Cloud Run execution environments, and the required
ones are enforced (no TensorFlow here: the real worker is in test_containment.py, the function
end to end in tests/integration/test_platform_layers.py).

gVisor (Cloud Run's first generation), from its source: no `NoNewPrivs:` and no `CapAmb:` line in
/proc/<pid>/status (its lines: CapInh/CapPrm/CapEff/CapBnd, Seccomp), and PR_SET_SECUREBITS
refused with EPERM for anything but KEEP_CAPS. A child process applies the real layers and is
shown such status lines and such a refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from handlers.errors import SandboxLayerMissing, SettingsError, TransientError
from handlers.settings import DEFAULT_REQUIRED_LAYERS, Settings
from handlers.validation.sandbox import confine
from handlers.validation.sandbox.process import Sandbox

ROOT = Path(__file__).resolve().parents[3]
IS_ROOT = os.geteuid() == 0

_GVISOR = r"""
import ctypes, errno, json, sys
sys.path.insert(0, sys.argv[1])
import handlers.validation.sandbox.confine as c
zeros = "0" * 16
# gVisor's /proc/<pid>/status lines (pkg/sentry/fsimpl/proc/task_files.go): no NoNewPrivs, no CapAmb
c.thread_status = lambda: [{"Seccomp": "2", "CapEff": zeros, "CapPrm": zeros, "CapBnd": zeros}]
if sys.argv[3] == "refuse-securebits":
    real = c._libc
    class Libc:
        def __getattr__(self, name):
            return getattr(real, name)
        def prctl(self, option, *args):
            if option == 28:  # PR_SET_SECUREBITS: gVisor's EPERM
                ctypes.set_errno(errno.EPERM)
                return -1
            return real.prctl(option, *args)
    c._libc = Libc()
print(json.dumps(c.confine([sys.argv[2]])))
"""


def _confine_like_gvisor(tmp_path: Path, mode: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _GVISOR, str(ROOT), str(tmp_path), mode],
        capture_output=True, text=True, timeout=60, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(confine._ARCH is None, reason="no seccomp syscall table for this machine")
def test_layers_hold_without_the_status_lines_gvisor_lacks(tmp_path):
    """no_new_privs is asked of prctl, an absent CapAmb line is no evidence: both still hold."""
    layers = _confine_like_gvisor(tmp_path, "plain")
    assert layers["no_new_privs"] is True and layers["seccomp"] is True, layers
    assert layers["caps_dropped"] is True, layers


def test_a_refused_securebit_is_reported_not_swallowed(tmp_path):
    layers = _confine_like_gvisor(tmp_path, "refuse-securebits")
    assert layers["securebits"] is False
    assert "PR_SET_SECUREBITS" in layers["unavailable"]["securebits"]
    assert "Operation not permitted" in layers["unavailable"]["securebits"]
    assert layers["no_new_privs"] is True  # the other layers are unaffected


def test_no_new_privs_is_read_with_prctl():
    """This test process never set it: prctl says so (the /proc line is not consulted)."""
    assert confine.no_new_privs() is (
        Path("/proc/self/status").read_text().count("NoNewPrivs:\t1") == 1
    )


# ---- the policy ---------------------------------------------------------------------------------
BASE = {"GOOGLE_CLOUD_PROJECT": "test-project"}


def test_required_layers_setting():
    assert Settings.from_env(BASE).sandbox_required_layers == DEFAULT_REQUIRED_LAYERS
    assert DEFAULT_REQUIRED_LAYERS == ("seccomp", "no_new_privs", "non_dumpable")
    env = {**BASE, "SANDBOX_REQUIRED_LAYERS": " Landlock, seccomp ,seccomp"}
    assert Settings.from_env(env).sandbox_required_layers == ("landlock", "seccomp")
    none = {**BASE, "SANDBOX_REQUIRED_LAYERS": "none"}
    assert Settings.from_env(none).sandbox_required_layers == ()


@pytest.mark.parametrize("raw", ["seccomp,apparmor", ",", "selinux"])
def test_an_unknown_layer_stops_start_up_naming_the_variable(raw):
    with pytest.raises(SettingsError, match="SANDBOX_REQUIRED_LAYERS"):
        Settings.from_env({**BASE, "SANDBOX_REQUIRED_LAYERS": raw})


def _sandbox(required: tuple[str, ...], worker: dict) -> Sandbox:
    box = Sandbox(
        memory_mb=512, timeout_seconds=5, max_uses=1, temp_dir=None, required_layers=required
    )
    box._worker_layers = worker
    return box


def test_a_missing_required_layer_is_named_with_why():
    worker = {
        "seccomp": False,
        "no_new_privs": True,
        "landlock": False,
        "unavailable": {"seccomp": "seccomp: Function not implemented", "landlock": "ENOSYS"},
    }
    box = _sandbox(("seccomp", "no_new_privs"), worker)
    assert box.missing_layers() == {"seccomp": "seccomp: Function not implemented"}
    with pytest.raises(SandboxLayerMissing) as info:
        box._require_layers("the .keras file m.keras")
    assert isinstance(info.value, TransientError)  # redelivered, never recorded
    assert info.value.code == "sandbox.layer_missing"
    assert info.value.layers == {"seccomp": "seccomp: Function not implemented"}
    assert "seccomp" in str(info.value) and "SANDBOX_REQUIRED_LAYERS" in str(info.value)
    # Landlock is missing too, but not required: not named.
    assert "landlock" not in str(info.value).split("(")[0]


def test_non_dumpable_means_the_function_process():
    box = _sandbox(("non_dumpable",), {"seccomp": True})
    # This test process is dumpable unless something hardened it: the report follows the kernel.
    from handlers.hardening import is_dumpable

    assert ("non_dumpable" in box.missing_layers()) is is_dumpable()


def test_nothing_required_nothing_enforced():
    _sandbox((), {"seccomp": False})._require_layers("x")
