"""`VertexRegistry._call`'s retry: api_core's `Retry` with the one Vertex predicate.

The operations here are plain functions raising what the SDK raises (google.api_core exceptions),
so the rules are tested without a server; test_vertex.py runs them against the emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from google.api_core import exceptions as api
from google.api_core.retry import Retry

from handlers.errors import PermanentError, PermissionDenied, TransientError
from handlers.registry.vertex import VertexRegistry
from handlers.registry.vertex_errors import is_transient


def _registry(seen: list[Exception], timeout: float | None = 0.2) -> VertexRegistry:
    retry = Retry(
        predicate=is_transient, initial=0.001, maximum=0.01, timeout=timeout, on_error=seen.append
    )
    return VertexRegistry(None, project="retry-test", location="us-central1", retry=retry)


def _failing(failures: int, exc: Exception) -> tuple[Callable[[], str], dict[str, int]]:
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise exc
        return "ok"

    return operation, calls


@pytest.mark.parametrize(
    "exc", [api.ServiceUnavailable("down"), api.TooManyRequests("quota"), ConnectionError("reset")]
)
def test_transient_failures_are_retried(exc: Exception) -> None:
    seen: list[Exception] = []
    operation, calls = _failing(2, exc)
    assert _registry(seen)._call("GetModel", operation) == "ok"
    assert calls["n"] == 3 and len(seen) == 2 and all(isinstance(e, TransientError) for e in seen)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [(api.BadRequest("bad label"), PermanentError), (api.Forbidden("no"), PermissionDenied)],
)
def test_permanent_failures_and_403s_are_not_retried(exc: Exception, kind: type) -> None:
    seen: list[Exception] = []
    operation, calls = _failing(5, exc)
    with pytest.raises(kind):
        _registry(seen)._call("GetModel", operation)
    assert calls["n"] == 1 and seen == []


def test_a_spent_budget_raises_the_last_failure_itself() -> None:
    seen: list[Exception] = []
    operation, calls = _failing(1_000_000, api.ServiceUnavailable("down"))
    with pytest.raises(TransientError) as caught:
        _registry(seen, timeout=0.05)._call("ListModels", operation)
    assert not isinstance(caught.value, api.RetryError)
    assert caught.value.code == "vertex_unavailable" and "ListModels" in str(caught.value)
    assert caught.value is seen[-1] and calls["n"] == len(seen) >= 2


@pytest.mark.parametrize("retry", [None, False])
def test_a_call_that_must_not_repeat_runs_once(retry: Any) -> None:
    seen: list[Exception] = []
    operation, calls = _failing(5, api.ServiceUnavailable("down"))
    with pytest.raises(TransientError):
        _registry(seen)._call("DeployModel", operation, retry=retry)
    assert calls["n"] == 1 and seen == []


def test_a_call_may_bring_its_own_retry() -> None:
    seen: list[Exception] = []
    mine: list[Exception] = []
    registry = _registry(seen)
    operation, calls = _failing(1, api.ServiceUnavailable("down"))
    own = Retry(predicate=is_transient, initial=0.001, timeout=1, on_error=mine.append)
    assert registry._call("GetModel", operation, retry=own) == "ok"
    assert calls["n"] == 2 and len(mine) == 1 and seen == []


def test_the_budget_is_cut_to_the_runs_deadline() -> None:
    seen: list[Exception] = []
    registry = _registry(seen, timeout=60)
    operation, calls = _failing(1_000_000, api.ServiceUnavailable("down"))
    with pytest.raises(TransientError):
        registry._call("GetModel", operation, retry=registry._within(time.monotonic() - 1))
    assert calls["n"] == 1  # the run had no time left: one attempt, no retry
    budget = registry._within(time.monotonic() + 10).timeout
    assert budget is not None and 0 < budget <= 10
    assert _registry(seen, timeout=None)._within(time.monotonic() + 10).timeout <= 10
