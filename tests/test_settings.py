from __future__ import annotations

from pathlib import Path

import pytest

from handlers.errors import SettingsError
from handlers.serving_images import default_image
from handlers.settings import Settings

BASE = {"GOOGLE_CLOUD_PROJECT": "my-project"}


def test_defaults() -> None:
    settings = Settings.from_env(BASE)
    assert settings.location == "us-central1"
    assert settings.model_prefix == "models/"
    assert settings.artifact_prefix == "registered/"
    assert settings.serving_image == default_image("my-project", "us-central1")
    assert settings.make_new_version_default is True
    assert settings.notify_topic is None
    assert settings.use_asgi is True


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "GOOGLE_CLOUD_PROJECT"),
        ({"GOOGLE_CLOUD_PROJECT": "My Project"}, "GOOGLE_CLOUD_PROJECT"),
        ({**BASE, "VERTEX_LOCATION": "moon"}, "VERTEX_LOCATION"),
        ({**BASE, "MODEL_PATH_PATTERN": "models/(.*"}, "MODEL_PATH_PATTERN"),
        ({**BASE, "MODEL_PATH_PATTERN": "models/(.*)/"}, "MODEL_PATH_PATTERN"),
        ({**BASE, "DEFAULT_VERSION_POLICY": "sometimes"}, "DEFAULT_VERSION_POLICY"),
        ({**BASE, "ARTIFACT_PREFIX": "models/registered/"}, "ARTIFACT_PREFIX"),
        ({**BASE, "STATE_PREFIX": "models/"}, "STATE_PREFIX"),
        ({**BASE, "NOTIFY_TOPIC": "my-topic"}, "NOTIFY_TOPIC"),
        ({**BASE, "VALIDATION_TIMEOUT_SECONDS": "soon"}, "VALIDATION_TIMEOUT_SECONDS"),
        ({**BASE, "CLAIM_LEASE_SECONDS": "1"}, "CLAIM_LEASE_SECONDS"),
        ({**BASE, "MODEL_PREFIX": "/models"}, "MODEL_PREFIX"),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**BASE, "VERTEX_AI_EMULATOR_HOST": "not a url"}, "VERTEX_AI_EMULATOR_HOST"),
        ({**BASE, "KERAS_EXTRA_ALLOWED_OBJECTS": "os.system;"}, "KERAS_EXTRA_ALLOWED_OBJECTS"),
        ({**BASE, "FUNCTION_USE_ASGI": "uvicorn"}, "FUNCTION_USE_ASGI"),
    ],
)
def test_bad_settings_fail_fast_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_prefixes_get_their_trailing_slash() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "MODEL_PREFIX": "ml/models",
            "DEFAULT_VERSION_POLICY": "keep",
            "VERTEX_AI_EMULATOR_HOST": "localhost:8089",
        }
    )
    assert settings.model_prefix == "ml/models/"
    assert settings.make_new_version_default is False
    assert settings.vertex_emulator_host == "http://localhost:8089"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("Yes", True), ("false", False), ("0", False), ("off", False)],
)
def test_function_use_asgi_reads_what_functions_framework_reads(raw: str, expected: bool) -> None:
    """functions-framework parses the same variable with click's booleans: they must agree."""
    import click

    assert Settings.from_env({**BASE, "FUNCTION_USE_ASGI": raw}).use_asgi is expected
    assert click.BOOL.convert(raw, None, None) is expected


# ---- one home per setting -----------------------------------------------------------------------


def test_readme_settings_table_is_the_generated_one() -> None:
    from handlers.settings import readme_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert readme_table() in readme, "regenerate with `python -m handlers.settings`"


def test_every_settings_field_has_exactly_one_declaration() -> None:
    from dataclasses import fields

    from handlers.settings import DECLARATIONS

    attrs = [d.attr for d in DECLARATIONS]
    envs = [d.env for d in DECLARATIONS]
    assert sorted(attrs) == sorted(f.name for f in fields(Settings))
    assert len(set(attrs)) == len(attrs) and len(set(envs)) == len(envs)


def test_dataclass_defaults_come_from_the_declarations() -> None:
    from handlers.settings import DECLARATIONS

    plain = Settings(project="some-project")
    for declared in DECLARATIONS[1:]:
        if declared.attr == "serving_image":  # "" = derived from the project and region
            assert plain.serving_image == default_image("some-project", plain.location)
            continue
        assert getattr(plain, declared.attr) == declared.default, declared.env


@pytest.mark.parametrize("word", ["1", "true", "T", "yes", "Y", "on", "TRUE"])
def test_true_spellings_are_the_same_for_the_function_and_the_cli(word: str) -> None:
    from handlers.settings import env_flag

    assert Settings.from_env({**BASE, "FUNCTION_USE_ASGI": word}).use_asgi is True
    assert env_flag({"REGISTRAR_JSON": word}, "REGISTRAR_JSON") is True


@pytest.mark.parametrize("word", ["0", "false", "F", "no", "n", "off"])
def test_false_spellings_are_the_same_for_the_function_and_the_cli(word: str) -> None:
    from handlers.settings import env_flag

    assert Settings.from_env({**BASE, "FUNCTION_USE_ASGI": word}).use_asgi is False
    assert env_flag({"REGISTRAR_JSON": word}, "REGISTRAR_JSON") is False


def test_an_unknown_boolean_spelling_names_the_variable() -> None:
    from handlers.settings import env_flag

    with pytest.raises(SettingsError, match=r"REGISTRAR_JSON='maybe': expected 'true' or 'false'"):
        env_flag({"REGISTRAR_JSON": "maybe"}, "REGISTRAR_JSON")


def test_artifact_limit_is_vertex_10_decimal_gigabytes() -> None:
    assert Settings(project="some-project").max_artifact_bytes == 10 * 10**9


def test_keras_hub_needs_keras_hub_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "keras_hub" else real(name, *a),
    )
    with pytest.raises(SettingsError, match=r"KERAS_HUB=true.*keras_hub is not installed"):
        Settings.from_env({**BASE, "KERAS_HUB": "true"})
    assert Settings.from_env({**BASE, "KERAS_HUB": "false"}).keras_hub is False
    with pytest.raises(SettingsError, match="KERAS_HUB='maybe'"):
        Settings.from_env({**BASE, "KERAS_HUB": "maybe"})


def test_keras_hub_is_imported_by_the_sandbox_before_custom_modules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "keras_hub" else real(name, *a),
    )
    settings = Settings.from_env({**BASE, "KERAS_HUB": "on", "KERAS_CUSTOM_OBJECT_MODULES": "json"})
    assert settings.keras_hub is True
    assert settings.sandbox_keras_modules == ("keras_hub", "json")
    assert Settings.from_env(BASE).sandbox_keras_modules == ()


def test_a_backfill_deploys_nothing_unless_asked() -> None:
    settings = Settings.from_env({**BASE, "DEPLOY_ENDPOINT": "serving-{model}"})
    assert settings.for_backfill(canary=False).deploy_endpoint is None
    assert settings.for_backfill(canary=True).deploy_endpoint == "serving-{model}"
