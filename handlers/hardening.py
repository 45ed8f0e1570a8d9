"""The function process' own hardening: cheap, ctypes only (no TensorFlow, nothing heavy).

`harden_function_process()` makes this process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`): other
processes of the same user — the sandbox worker, whose uid is ours (root on Cloud Functions) — can
then no longer read our `/proc/<pid>/environ`, `mem`, `fd/` or attach to us, unless they hold
CAP_SYS_PTRACE (the worker drops every capability: `handlers.validation.sandbox.confine`). It also
means no core dumps of the function. Call it once at start-up; calling it again is harmless.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4


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
