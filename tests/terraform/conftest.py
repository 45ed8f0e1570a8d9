"""Fixtures over the parsed Terraform module (see tfparse.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.terraform.tfparse import load_module


@pytest.fixture(scope="session")
def module() -> dict[str, Any]:
    return load_module()


@pytest.fixture(scope="session")
def function(module: dict[str, Any]) -> dict[str, Any]:
    functions = module["resource"]["google_cloudfunctions2_function"]
    assert len(functions) == 1, f"expected exactly one function, found {sorted(functions)}"
    return next(iter(functions.values()))
