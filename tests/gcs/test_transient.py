"""One transient rule for GCS: python-storage's own retry predicate (plus its exhausted retries)."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gx
from google.cloud.storage.retry import DEFAULT_RETRY

from handlers.gcs.objects import is_transient


@pytest.mark.parametrize(
    "exc",
    [
        gx.TooManyRequests("429"),
        gx.InternalServerError("500"),
        gx.ServiceUnavailable("503"),
        gx.GatewayTimeout("504"),
        requests.ConnectionError("reset"),
        requests.Timeout("slow"),
        ConnectionResetError("reset"),
        gx.RetryError("deadline exceeded", cause=gx.ServiceUnavailable("503")),
    ],
)
def test_what_python_storage_retries_is_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc", [gx.Forbidden("403"), gx.NotFound("404"), gx.BadRequest("400"), ValueError("x")]
)
def test_what_retrying_cannot_fix_is_not(exc: BaseException) -> None:
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc", [gx.ServiceUnavailable("503"), gx.Forbidden("403"), requests.ConnectionError("x")]
)
def test_the_rule_is_the_one_the_storage_client_retries_on(exc: BaseException) -> None:
    assert is_transient(exc) == DEFAULT_RETRY._predicate(exc)
