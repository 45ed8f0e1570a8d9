"""Run `registrar` in-process (`handlers.cli.app.main(argv)`) against the session's real emulators."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from handlers.cli.app import main
from tests.conftest import Bucket, Services, function_env


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def registrar(services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """`registrar("versions", "x", "--json")` -> Run(code, stdout, stderr)."""
    for name, value in function_env(services).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: keep cells on one line for assertions

    def run(*argv: str) -> Run:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def upload_versions(bucket: Bucket, models, name: str, count: int) -> list[dict[str, Any]]:
    """`count` uploads of model `name` (v1..vN), alternating the two tiny .keras files."""
    files = (models.keras_a, models.keras_b)
    return [
        bucket.upload(files[i % 2], f"models/{name}/v{i + 1}/model.keras") for i in range(count)
    ]
