"""What the function and the sandbox worker say to each other (shared by design: both import it).

A leaf module — no TensorFlow, no imports from the rest of `handlers` — so the worker side
(`worker`, `tf_ops`, `checks`, `keras_load`) can raise `Failure` without importing `worker`, and
the parent side (`process`) agrees with the worker on the environment names and the reserved
reason codes.
"""

from __future__ import annotations

TEST_HOOKS_ENV = "REGISTRAR_SANDBOX_TEST_HOOKS"  # only the test-suite's parent process sets it
MEMORY_ENV = "SANDBOX_MEMORY_MB"
FSIZE_ENV = "SANDBOX_FSIZE_MB"
OUT_OF_MEMORY = "sandbox.out_of_memory"
BAD_REQUEST = "sandbox.bad_request"
LOAD_FAILED = "load_failed"


class Failure(Exception):
    """A check in the worker failed: `code` is the reason code the record will carry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
