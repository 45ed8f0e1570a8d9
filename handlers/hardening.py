"""The function process' own hardening: cheap, ctypes only (no TensorFlow, nothing heavy).

`harden_function_process()` makes this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): other
processes of the same user — the sandbox worker, whose uid is ours (root on Cloud Functions) — can
then no longer read our `/proc/<pid>/environ`, `mem`, `fd/` or attach to us, unless they hold
CAP_SYS_PTRACE (the worker drops every capability: `handlers.validation.sandbox.confine`). It also
means no core dumps of the function. Call it once at start-up; calling it again is harmless.

`warn_if_landlock_missing()` says at start-up, as a WARNING with `sandbox_layer_missing:
"landlock"` (a log-based metric counts them), when the kernel has no Landlock (gVisor answers
ENOSYS): the sandbox worker then runs without its file-system layer.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Collection
from typing import Any

from .logs import get_logger, log

_logger = get_logger(__name__)

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_LANDLOCK_CREATE_RULESET = 444  # the same number on x86_64 and aarch64


def harden_function_process() -> dict[str, Any]:
    """Make this process non-dumpable; `{"non_dumpable": True}` or `False` with `why`."""
    if not sys.platform.startswith("linux"):
        return {"non_dumpable": False, "why": f"not Linux ({sys.platform})"}
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            return {"non_dumpable": False, "why": f"prctl(PR_SET_DUMPABLE): {os.strerror(err)}"}
    except (OSError, AttributeError) as exc:
        return {"non_dumpable": False, "why": f"prctl unavailable: {exc}"}
    return {"non_dumpable": not is_dumpable()}


def is_dumpable() -> bool:
    """The kernel's answer (PR_GET_DUMPABLE), not our intention."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) != 0
    except (OSError, AttributeError):
        return True


def landlock_abi() -> tuple[int, str]:
    """(the kernel's Landlock ABI, "") or (0, why) when it has none."""
    if not sys.platform.startswith("linux"):
        return 0, f"not Linux ({sys.platform})"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    except (OSError, AttributeError) as exc:
        return 0, f"syscall unavailable: {exc}"
    if abi < 0:
        return 0, f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}"
    return abi, ""


def warn_if_landlock_missing(required: Collection[str]) -> bool:
    """Log the start-up WARNING when Landlock is missing; True when it is."""
    abi, why = landlock_abi()
    if abi:
        return False
    consequence = (
        "SANDBOX_REQUIRED_LAYERS requires it, so no upload will validate here"
        if "landlock" in required
        else "the sandbox worker runs without its file-system layer (its reads and writes are "
        "not confined; seccomp, no_new_privs and non-dumpable still hold where each record's "
        "validation.sandbox_layers says so), and every record notes it"
    )
    log(
        _logger,
        logging.WARNING,
        f"Landlock is not available on this platform ({why}): {consequence}. Cloud Run's first "
        "generation execution environment (gVisor) has none.",
        sandbox_layer_missing="landlock",
        why=why,
    )
    return True
