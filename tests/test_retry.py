from __future__ import annotations

import pytest

from handlers.errors import TransientError
from handlers.retry import RetryPolicy, call_with_retry


class Blip(Exception):
    pass


def _flaky(failures: int, exc: Exception):
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc
        return "ok"

    return operation, calls


def _policy(slept: list[float], attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, initial_delay=0.1, max_delay=0.3, sleep=slept.append)


def test_transient_failures_are_retried_with_bounded_backoff() -> None:
    slept: list[float] = []
    operation, calls = _flaky(3, Blip("503"))
    result = call_with_retry(
        operation, is_transient=lambda e: isinstance(e, Blip), what="x", policy=_policy(slept)
    )
    assert result == "ok" and calls["n"] == 4
    caps = [0.1, 0.2, 0.3]  # initial * 2**n, capped at max_delay
    assert len(slept) == 3 and all(0 <= d <= cap for d, cap in zip(slept, caps, strict=True))


def test_permanent_failures_are_not_retried() -> None:
    slept: list[float] = []
    operation, calls = _flaky(5, ValueError("bad request"))
    with pytest.raises(ValueError):
        call_with_retry(
            operation, is_transient=lambda e: isinstance(e, Blip), what="x", policy=_policy(slept)
        )
    assert calls["n"] == 1 and slept == []


def test_exhausted_retries_become_a_transient_error_naming_the_call() -> None:
    operation, calls = _flaky(10, Blip("503"))
    with pytest.raises(TransientError, match="GetModel still failing after 3 attempts"):
        call_with_retry(
            operation,
            is_transient=lambda e: isinstance(e, Blip),
            what="GetModel",
            policy=_policy([], attempts=3),
        )
    assert calls["n"] == 3


def test_wrap_last_false_raises_the_last_error_itself() -> None:
    error = TransientError("vertex down", code="vertex_unavailable")
    operation, _ = _flaky(10, error)
    with pytest.raises(TransientError) as info:
        call_with_retry(
            operation,
            is_transient=lambda e: True,
            what="x",
            policy=_policy([], attempts=2),
            wrap_last=False,
        )
    assert info.value is error and info.value.code == "vertex_unavailable"
