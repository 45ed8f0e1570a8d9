"""One shared Validator (one sandboxed TF worker) for the whole validation test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.settings import Settings
from handlers.validation.sandbox.protocol import TEST_HOOKS_ENV
from handlers.validation.validator import Validator
from tests import modelfactory
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _test_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets the validation tests (never an artifact) ask a worker they start to crash, hang or
    exhaust memory; only for these tests, so no function server elsewhere inherits it."""
    monkeypatch.setenv(TEST_HOOKS_ENV, "1")


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(
        validation_memory_mb=3072,
        validation_timeout_seconds=60,
        validator_max_uses=50,
        temp_dir=str(tmp_path_factory.mktemp("sandbox")),
    )


@pytest.fixture(scope="session")
def validator(settings: Settings) -> Iterator[Validator]:
    # Not prestarted: the worker starts on the first request, so building the session's model
    # fixtures (TensorFlow in this process) does not eat into its start-up budget on a busy machine.
    v = Validator(settings)
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
