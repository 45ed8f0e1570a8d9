"""The real worker (real TensorFlow) contains what runs in it: from inside it (test hooks, which
only the test suite's parent can switch on) writing outside its private directory, reading the
function process' environment, creating sockets, executing programs and signalling the parent
all fail — also for a TensorFlow graph op run by TF's own threads — and the worker stays usable.
The layers are set up once per worker and each report says which ones held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from handlers.validation.sandbox import confine

ROOT = Path(__file__).resolve().parents[3]
ABI = confine.landlock_abi()


def _test(validator, action: str, **extra) -> dict:
    answer = validator.sandbox.request({"op": "test", "action": action, **extra}, what=action)
    assert answer["ok"] is True, answer
    return answer


@pytest.fixture
def worker_pid(validator):
    validator.sandbox.request({"op": "ping"}, what="ping")
    pid = validator.sandbox.pid
    yield pid
    assert validator.sandbox.pid == pid, "the worker was replaced: the attempt crashed it"


def test_report_says_which_layers_held(validator, valid_saved_model, tmp_path):
    report = validator.validate_saved_model(valid_saved_model, tmp_path / "work")
    layers = report.sandbox_layers
    assert layers["non_dumpable_parent"] is True
    assert layers["rlimits"] is True and layers["no_new_privs"] is True
    assert layers["caps_dropped"] is True and layers["seccomp"] is True
    if ABI:
        assert layers["landlock"] == f"abi {ABI}"
        assert "unavailable" not in layers
    else:  # reported with why, not silently skipped
        assert layers["landlock"] is False and "Landlock" in layers["unavailable"]["landlock"]
    assert report.record()["sandbox_layers"] == layers
    assert validator.sandbox_layers == layers


@pytest.mark.skipif(ABI < 1, reason="kernel without Landlock")
def test_writing_outside_the_private_dir_fails(validator, worker_pid, tmp_path):
    sentinel = tmp_path / "PWNED"
    answer = _test(validator, "write", path=str(sentinel))
    assert answer["blocked"] is True and "PermissionError" in answer["error"]
    assert not sentinel.exists()
    inside = validator.sandbox._home / "tmp" / "allowed"  # type: ignore[operator]
    assert _test(validator, "write", path=str(inside))["blocked"] is False
    assert inside.exists()


@pytest.mark.skipif(ABI < 1, reason="kernel without Landlock")
def test_a_graph_op_cannot_write_outside_either(validator, worker_pid, tmp_path):
    """WriteFile executed by TensorFlow's runtime (a tf.function: TF's executor threads, started
    after the layers were set up) — what a hostile graph would do past the static op check."""
    sentinel = tmp_path / "PWNED-by-graph"
    answer = _test(validator, "tf_write", path=str(sentinel))
    assert answer["blocked"] is True, answer
    assert "PermissionDenied" in answer["error"] or "Permission denied" in answer["error"]
    assert not sentinel.exists()


@pytest.mark.parametrize("family", ["AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"])
def test_no_new_sockets(validator, worker_pid, family):
    answer = _test(validator, "socket", family=family)
    assert answer["blocked"] is True and "Operation not permitted" in answer["error"], answer


def test_no_exec(validator, worker_pid):
    answer = _test(validator, "exec", path="/bin/true")
    assert answer["blocked"] is True and "Operation not permitted" in answer["error"], answer


@pytest.mark.parametrize("kind", ["symbolic", "hard"])
def test_no_links_even_in_the_private_dir(validator, worker_pid, tmp_path, kind):
    """A link in an export would make the function read a file for the worker."""
    target = tmp_path / "someone-elses-file"
    target.write_text("not for the worker")
    answer = _test(validator, "link", kind=kind, path=str(target))
    assert answer["blocked"] is True and "Operation not permitted" in answer["error"], answer


def test_an_export_holding_a_link_is_refused(tmp_path):
    """If the worker's layers did not hold and it put a link in its export, the function
    refuses the export before it reads or moves anything through it (and drops the worker)."""
    from handlers.errors import Rejected
    from handlers.validation.sandbox.process import Sandbox

    for kind in ("symbolic", "hard"):
        slot = tmp_path / kind
        export = slot / "saved_model"
        (export / "variables").mkdir(parents=True)
        (export / "saved_model.pb").write_bytes(b"pb")
        secret = tmp_path / f"secret-{kind}"
        secret.write_text("function-only")
        link = export / "variables" / "variables.data-00000-of-00001"
        make_link = os.symlink if kind == "symbolic" else os.link
        make_link(secret, link)
        staged = {"slot": slot, "export": export, "target": tmp_path / f"target-{kind}"}
        with pytest.raises(Rejected) as info:
            Sandbox._unstage(staged, ok=True)
        assert info.value.code == "sandbox.bad_export"
        assert not (tmp_path / f"target-{kind}").exists() and not export.exists()
    plain = tmp_path / "plain" / "saved_model"
    plain.mkdir(parents=True)
    (plain / "saved_model.pb").write_bytes(b"pb")
    staged = {"slot": plain.parent, "export": plain, "target": tmp_path / "moved"}
    Sandbox._unstage(staged, ok=True)
    assert (tmp_path / "moved" / "saved_model.pb").read_bytes() == b"pb"


def test_no_signals_to_the_parent(validator, worker_pid):
    answer = _test(validator, "signal_parent")
    assert answer["blocked"] is True, answer


def test_every_thread_is_confined_and_layers_are_set_up_once(
    validator, worker_pid, valid_keras, tmp_path
):
    """After uploads (TensorFlow has started its thread pools): every thread has no
    capabilities, no_new_privs and the one seccomp filter — not one more per upload."""
    for i in range(2):
        validator.validate_keras(valid_keras, tmp_path / f"work{i}")
    threads = _test(validator, "threads")["threads"]
    assert len(threads) > 1
    for status in threads:
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2", status
        assert status["Seccomp_filters"] == "1", status
        for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
            assert int(status[key], 16) == 0, status


def test_models_still_validate_after_the_attempts(
    validator, valid_keras, valid_saved_model, tmp_path
):
    pid = validator.sandbox.pid
    for action, extra in [
        ("write", {"path": str(tmp_path / "x")}),
        ("socket", {}),
        ("exec", {}),
        ("read_parent_environ", {}),
    ]:
        _test(validator, action, **extra)
    assert validator.validate_keras(valid_keras, tmp_path / "k").smoke_test == "passed"
    assert validator.validate_saved_model(valid_saved_model, tmp_path / "s").smoke_test == "passed"
    assert validator.sandbox.pid == pid


_CANARY = "registrar-canary-6f1d2e"
_PARENT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from handlers.validation.sandbox.process import Sandbox
    s = Sandbox(memory_mb=3072, timeout_seconds=60, max_uses=5, temp_dir=None)
    try:
        answer = s.request({"op": "test", "action": "read_parent_environ"}, what="probe")
        pid = s.pid
        again = s.request({"op": "ping"}, what="ping")
        with open("/proc/self/environ", "rb") as f:
            own = sys.argv[2].encode() in f.read()
        print(json.dumps({"answer": answer, "layers": s.layers, "own": own,
                          "same_worker": again.get("pid") == pid}))
    finally:
        s.stop()
    """
)


def test_the_parent_environment_cannot_be_read():
    """A function process whose environment holds a canary (as it would hold credentials or
    settings) starts a real worker, which tries to read /proc/<parent>/environ."""
    env = {**os.environ, "REGISTRAR_SANDBOX_TEST_HOOKS": "1", "SECRET_FOR_TEST": _CANARY}
    out = subprocess.run(
        [sys.executable, "-c", _PARENT, str(ROOT), _CANARY],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["own"] is True  # the canary is there to be stolen
    answer = result["answer"]
    assert answer["blocked"] is True, answer
    assert _CANARY not in json.dumps(answer)
    assert result["same_worker"] is True
    assert result["layers"]["non_dumpable_parent"] is True
