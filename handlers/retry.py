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

from .errors import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` calls at most; before call n+1 sleep a jittered `initial_delay * multiplier**n`
    capped at `max_delay`. The jitter keeps at least `min_jitter` of that delay (0: full jitter)."""

    attempts: int = 4
    initial_delay: float = 0.2
    max_delay: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    multiplier: float = 2.0
    min_jitter: float = 0.0

    def delays(self) -> list[float]:
        return [
            random.uniform(self.min_jitter * cap, cap)
            for cap in (
                min(self.max_delay, self.initial_delay * self.multiplier**n)
                for n in range(self.attempts - 1)
            )
        ]


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    operation: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    on_retry: Callable[[BaseException, float], None] | None = None,
    wrap_last: bool = True,
) -> T:
    """Run `operation`; retry transient failures, then raise TransientError naming `what`.

    `on_retry(exc, delay)` is told of each retry (e.g. to log it). With `wrap_last=False` the last
    transient failure itself is raised when the attempts run out, for callers whose exceptions
    already are TransientErrors with their own code and message.
    """
    delays = policy.delays()
    for attempt in range(policy.attempts):
        try:
            return operation()
        except Exception as exc:  # classified below; anything not transient propagates unchanged
            if not is_transient(exc):
                raise
            if attempt == len(delays):
                if not wrap_last:
                    raise
                raise TransientError(
                    f"{what} still failing after {policy.attempts} attempts: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if on_retry is not None:
                on_retry(exc, delays[attempt])
            policy.sleep(delays[attempt])
    raise AssertionError("unreachable")
