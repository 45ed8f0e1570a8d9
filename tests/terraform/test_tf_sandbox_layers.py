"""The sandbox's required layers and the missing-Landlock metric, from Terraform to the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from handlers.settings import DEFAULT_REQUIRED_LAYERS, SANDBOX_LAYERS, Settings
from tests.terraform import tfconsole

needs_terraform = pytest.mark.skipif(
    tfconsole.TERRAFORM is None, reason="terraform binary not on PATH: not evaluated"
)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tfconsole.make_probe(tmp_path_factory.mktemp("tf-sandbox-layers"))


def test_variable_names_the_code_default_and_the_same_layers(module: dict[str, Any]) -> None:
    variable = module["variable"]["sandbox_required_layers"]
    assert variable["default"] is None
    text = variable["description"]
    assert all(layer in text for layer in DEFAULT_REQUIRED_LAYERS), text
    condition = str(variable["validation"])
    assert all(f'"{layer}"' in condition for layer in SANDBOX_LAYERS), condition


@needs_terraform
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, DEFAULT_REQUIRED_LAYERS),  # unset: the code's default
        (["seccomp", "landlock"], ("seccomp", "landlock")),
        ([], ()),
    ],
)
def test_the_setting_reaches_the_code(probe: Path, value: Any, expected: tuple[str, ...]) -> None:
    variables = {} if value is None else {"sandbox_required_layers": value}
    env = tfconsole.value(probe, "local.environment_variables", **variables)
    assert ("SANDBOX_REQUIRED_LAYERS" in env) is (value is not None), env
    assert Settings.from_env(env).sandbox_required_layers == expected


@needs_terraform
def test_an_unknown_layer_is_refused_at_plan_time(probe: Path) -> None:
    assert tfconsole.rejected(
        probe, "sandbox_required_layers", sandbox_required_layers=["apparmor"]
    )


def test_landlock_metric_counts_the_start_up_warning(module: dict[str, Any]) -> None:
    metric = module["resource"]["google_logging_metric"]["landlock_missing"]
    assert (
        "jsonPayload.sandbox_layer_missing" in metric["filter"] and "landlock" in metric["filter"]
    )
    outputs = module["output"]["log_metrics"]["value"]
    assert "google_logging_metric.landlock_missing.name" in str(outputs)
