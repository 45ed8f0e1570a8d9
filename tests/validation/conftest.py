"""One shared Validator (one sandboxed TF worker) for the whole validation test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Lets the test suite (never an artifact) ask the worker to crash, hang or exhaust memory.
os.environ["REGISTRAR_SANDBOX_TEST_HOOKS"] = "1"

from handlers.settings import Settings
from handlers.validation.validator import Validator
from tests import modelfactory


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        project="test-project",
        validation_memory_mb=3072,
        validation_timeout_seconds=60,
        validator_max_uses=50,
        temp_dir=str(tmp_path_factory.mktemp("sandbox")),
    )


@pytest.fixture(scope="session")
def validator(settings: Settings) -> Iterator[Validator]:
    v = Validator(settings)
    v.prestart()
    yield v
    v.close()


@pytest.fixture(scope="session")
def valid_keras(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return modelfactory.build_keras_model(tmp_path_factory.mktemp("k") / "model.keras")


@pytest.fixture(scope="session")
def valid_saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return modelfactory.build_saved_model(tmp_path_factory.mktemp("sm") / "model", shards=3)


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "code from the artifact ran"
