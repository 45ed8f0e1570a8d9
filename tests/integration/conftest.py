"""Fixtures the integration tests share."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from handlers.cli.app import main as registrar_main
from tests.conftest import Services, function_env


@pytest.fixture
def registrar(services: Services, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """`registrar(*argv)` -> (exit code, parsed --json output), with the function's environment
    (a test adds settings with `monkeypatch.setenv`)."""
    for key, value in function_env(services).items():
        monkeypatch.setenv(key, value)

    def run(*argv: str) -> tuple[int, Any]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = registrar_main([*argv, "--json"])
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else err.getvalue())

    return run
