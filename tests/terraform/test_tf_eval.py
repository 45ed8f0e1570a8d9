"""Terraform itself evaluates the module's inputs and the function's environment, offline.

The variables, main.tf's locals and function.tf's `locals` block reference no provider, so
`terraform console` can evaluate them with no provider installed. The environment Terraform computes
is then fed to the code's own `Settings.from_env`: the deployed configuration must start the function.
Skipped only when no terraform binary is on PATH.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from handlers.settings import Settings
from tests.terraform.tfconsole import evaluate as _evaluate
from tests.terraform.tfconsole import run as _run
from tests.terraform.tfconsole import value as _value
from tests.terraform.tfparse import TF_DIR

TERRAFORM = shutil.which("terraform")
pytestmark = pytest.mark.skipif(
    TERRAFORM is None, reason="terraform binary not on PATH: variable validation not evaluated"
)


def _top_level_block(text: str, header: str) -> str:
    match = re.search(rf"^{re.escape(header)} \{{\n.*?^\}}\n", text, flags=re.M | re.S)
    assert match, f"no top-level `{header} {{` block"
    return match.group(0)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tf-probe")
    shutil.copy(TF_DIR / "variables.tf", directory)
    shutil.copy(TF_DIR / "main.tf", directory)
    function_locals = _top_level_block((TF_DIR / "function.tf").read_text(), "locals")
    assert not re.search(r"\b(google_\w+|data)\.", function_locals), "locals now need a provider"
    (directory / "function_locals.tf").write_text(function_locals)
    (directory / "cli.tfrc").write_text("")
    result = _run(directory, ["init", "-backend=false", "-input=false", "-no-color"])
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_default_environment_starts_the_function(probe: Path) -> None:
    env = _value(probe, "local.environment_variables")
    assert env == {
        "GOOGLE_CLOUD_PROJECT": "my-project",
        "VERTEX_LOCATION": "us-central1",
        "MODEL_PREFIX": "models/",
        "ARTIFACT_PREFIX": "registered/",
        "STATE_PREFIX": "registrar-state/",
        "SERVING_CONTAINER_IMAGE_URI": Settings(project="my-project").serving_image,
        "DEFAULT_VERSION_POLICY": "new",
        "ALLOW_CROSS_FOLDER_MODELS": "false",
        "LOG_LEVEL": "INFO",
        "FUNCTION_USE_ASGI": "true",
        "FUNCTION_TIMEOUT_SECONDS": "540",
    }
    settings = Settings.from_env(env)
    assert settings == Settings(project="my-project")


def test_every_input_reaches_the_code(probe: Path) -> None:
    env = _value(
        probe,
        "local.environment_variables",
        vertex_location="europe-west4",
        model_prefix="incoming/models/",
        artifact_prefix="vertex/artifacts/",
        state_prefix="vertex/state/",
        model_path_pattern=r"^incoming/models/(?P<model>[^/]+)/(?P<version>[^/]+)/",
        default_version_policy="keep",
        allow_cross_folder_models=True,
        notify_topic="projects/my-project/topics/model-outcomes",
        log_level="DEBUG",
        keras_extra_allowed_objects=["my_layers.Scale", "my_layers.Shift"],
        temp_dir="/tmp/registrar",
        asgi_server=False,
        limits={
            "claim_lease_seconds": 600,
            "max_artifact_bytes": 5 * 1024**3,
            "max_uncompressed_bytes": 6 * 1024**3,
            "max_compression_ratio": 50.5,
            "max_archive_members": 500,
            "validation_timeout_seconds": 240,
            "validation_memory_mb": 6144,
            "validator_max_uses": 10,
            "directory_upload_window_seconds": 1800,
        },
    )
    s = Settings.from_env(env)
    assert (s.location, s.model_prefix, s.artifact_prefix, s.state_prefix) == (
        "europe-west4",
        "incoming/models/",
        "vertex/artifacts/",
        "vertex/state/",
    )
    assert s.model_path_pattern is not None and "model" in s.model_path_pattern.groupindex
    assert s.make_new_version_default is False
    assert s.allow_cross_folder_models is True
    assert s.notify_topic == "projects/my-project/topics/model-outcomes"
    assert s.log_level == "DEBUG"
    assert s.keras_extra_allowed_objects == frozenset({"my_layers.Scale", "my_layers.Shift"})
    assert s.temp_dir == "/tmp/registrar"
    assert s.use_asgi is False
    assert s.claim_lease_seconds == 600
    assert s.max_artifact_bytes == 5 * 1024**3
    assert s.max_uncompressed_bytes == 6 * 1024**3
    assert s.max_compression_ratio == 50.5
    assert s.max_archive_members == 500
    assert s.validation_timeout_seconds == 240
    assert s.validation_memory_mb == 6144
    assert s.validator_max_uses == 10
    assert s.directory_upload_window_seconds == 1800


def test_the_function_timeout_reaches_the_code_and_bounds_its_waits(probe: Path) -> None:
    """`timeout_seconds` is both the platform's run limit and the code's FUNCTION_TIMEOUT_SECONDS;
    a lease or validation timeout that does not fit it stops start-up, naming the variables."""
    env = _value(
        probe,
        "local.environment_variables",
        timeout_seconds=120,
        limits={"validation_timeout_seconds": 100},
    )
    assert env["FUNCTION_TIMEOUT_SECONDS"] == "120"
    assert Settings.from_env(env).function_timeout_seconds == 120
    tight = _value(
        probe,
        "local.environment_variables",
        timeout_seconds=120,
        limits={"validation_timeout_seconds": 100, "claim_lease_seconds": 90},
    )
    with pytest.raises(ValueError, match=r"CLAIM_LEASE_SECONDS=90.*FUNCTION_TIMEOUT_SECONDS=120"):
        Settings.from_env(tight)
    assert _value(probe, "local.claim_lease_seconds", limits={"claim_lease_seconds": 90}) == 90


@pytest.mark.parametrize(
    ("memory", "cpu"), [("4Gi", "1"), ("8Gi", "2"), ("16Gi", "4"), ("32Gi", "8")]
)
def test_cpu_follows_memory(probe: Path, memory: str, cpu: str) -> None:
    assert _value(probe, "local.cpu", memory=memory) == cpu


@pytest.mark.parametrize(
    ("prefixes", "disjoint"),
    [
        ({}, True),
        ({"artifact_prefix": "models/registered/"}, False),
        ({"state_prefix": "m/"}, True),
        ({"model_prefix": "registered/x/"}, False),
        ({"state_prefix": "registered/state/"}, False),
    ],
)
def test_overlapping_prefixes_are_caught(
    probe: Path, prefixes: dict[str, str], disjoint: bool
) -> None:
    assert _value(probe, "local.prefixes_disjoint", **prefixes) is disjoint


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("trigger_mode", "both"),
        ("project_id", "123456789"),
        ("bucket_name", "Not_A_Bucket!"),
        ("model_prefix", "models"),
        ("model_prefix", "/models/"),
        ("model_prefix", "a//b/"),
        ("artifact_prefix", 'quote"d/'),
        ("memory", "2Gi"),
        ("cpu", "3"),
        ("timeout_seconds", 600),
        ("max_instance_count", 0),
        ("default_version_policy", "always"),
        ("log_level", "TRACE"),
        ("notify_topic", "model-outcomes"),
        ("model_path_pattern", "^models/(?P<name>.+)/"),
        ("keras_extra_allowed_objects", ["NoModule"]),
        ("limits", {"validation_memory_mb": 100}),
        ("limits", {"claim_lease_seconds": 5}),
        ("name", "a-name-that-is-far-too-long-for-sa"),
        ("failure_alert", {"threshold": -1}),
    ],
)
def test_invalid_inputs_are_rejected_at_plan_time(probe: Path, variable: str, value: Any) -> None:
    result = _evaluate(probe, "local.labels", **{variable: value})
    assert "Invalid value for variable" in result.stderr, f"{variable}={value!r} was accepted"
    assert f'variable "{variable}"' in result.stderr, result.stderr
