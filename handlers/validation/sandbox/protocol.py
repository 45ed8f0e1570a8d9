"""What the function and the sandbox worker say to each other (shared by design: both import it).

A leaf module — no TensorFlow, no imports from the rest of `handlers` — so the worker side
(`worker`, `tf_ops`, `checks`, `keras_load`) can raise `Failure` without importing `worker`, and
the parent side (`process`) agrees with the worker on the environment names and the reserved
reason codes.

An answer is one JSON line: `{"ok": true, ...}` or `{"ok": false, "code", "facts", "message"}`.
Only `code` and the typed `facts` can reach the record and the notification: the parent
(`reasons.compose`) writes the record's message from a fixed template per code and re-checks every
fact. `message` is the worker's account for operators — it may quote TensorFlow, and so the
model (an op's error can echo a file it read, a layer name, a tensor's value) — and goes to the
function's log only, bounded to `DETAIL_LIMIT` characters.
"""

from __future__ import annotations

from typing import Any

TEST_HOOKS_ENV = "REGISTRAR_SANDBOX_TEST_HOOKS"  # only the test-suite's parent process sets it
MEMORY_ENV = "SANDBOX_MEMORY_MB"
FSIZE_ENV = "SANDBOX_FSIZE_MB"
# Modules the worker imports before confining itself (KERAS_CUSTOM_OBJECT_MODULES: operator-trusted
# code that registers custom Keras objects), comma-separated.
KERAS_MODULES_ENV = "SANDBOX_KERAS_MODULES"
WRITABLE_ENV = "SANDBOX_WRITABLE"  # the worker's home: its layout is below (Landlock)
SCRATCH_DIRS = ("tmp", "out")  # beneath home: the only places the worker may write
INBOX_DIR = "in"  # beneath home: uploads staged for the worker (read and remove only)
OUT_OF_MEMORY = "sandbox.out_of_memory"
BAD_REQUEST = "sandbox.bad_request"
LOAD_FAILED = "load_failed"
DETAIL_LIMIT = 2048


class Failure(Exception):
    """A check in the worker failed.

    `code` is the reason code the record will carry. `message` (the exception's text) is for
    operators only: the function logs it and never records it. `facts` are what the record's
    message may quote: names (of signature inputs/outputs, error classes), shapes, counts and
    words from a fixed vocabulary (e.g. `step="export"`); the parent drops any that break its
    rules (`handlers.validation.sandbox.reasons`).
    """

    def __init__(self, code: str, message: str = "", **facts: Any) -> None:
        super().__init__(message)
        self.code = code
        self.facts = facts
