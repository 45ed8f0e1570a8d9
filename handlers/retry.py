"""Short, bounded in-process retry with exponential backoff and full jitter.

Long waits belong to the platform (Eventarc redelivers for 24 h with 10-600 s backoff); here we
only smooth over blips so a single 503 does not cost a redelivery.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from handlers.errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_delay: float = 0.2
    max_delay: float = 2.0
    sleep: Callable[[float], None] = time.sleep

    def delays(self) -> list[float]:
        return [
            random.uniform(0, min(self.max_delay, self.initial_delay * 2**n))
            for n in range(self.attempts - 1)
        ]


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    operation: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
) -> T:
    """Run `operation`; retry transient failures, then raise TransientError naming `what`."""
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return operation()
        except Exception as exc:  # classified below; anything not transient propagates unchanged
            if not is_transient(exc):
                raise
            if attempt == len(delays):
                raise TransientError(
                    f"{what} still failing after {policy.attempts} attempts: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            policy.sleep(delays[attempt])
    raise AssertionError("unreachable")
