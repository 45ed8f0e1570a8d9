"""A folder cannot take over another folder's model: end to end over HTTP through the function
(functions-framework), fake-gcs-server and the Vertex emulator.

A model belongs to the folder its first version came from (the top-level folder under
MODEL_PREFIX, or the prefix itself for flat uploads), recorded as the `registrar-folder` label; an
upload from another folder naming it with custom metadata `display_name` is rejected
(`name.owned_by_another_folder`) before it is downloaded, unless ALLOW_CROSS_FOLDER_MODELS=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from handlers.registry.folders import FOLDER_LABEL
from handlers.registry.vertex import make_registry
from handlers.settings import Settings
from tests.conftest import LOCATION, PROJECT, Bucket, Models, Services, Vertex, function_env

STATE = "registrar-state/uploads/"


def _post(url: str, resource: dict[str, Any]) -> int:
    headers, body = binary_event(resource)
    return requests.post(url, data=body, headers=headers, timeout=300).status_code


def _record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any]:
    return bucket.read_json(f"{STATE}{resource['name']}/g{resource['generation']}.json")


def _start(services: Services, tmp: Any, **env: str) -> Iterator[str]:
    full = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        **env,
    }
    service = stack.start_function(full, log_dir=tmp)
    yield service.url
    service.stop()


@pytest.fixture(scope="module")
def server(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _start(services, tmp_path_factory.mktemp("folder-rule"))


@pytest.fixture(scope="module")
def allowing_server(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _start(
        services, tmp_path_factory.mktemp("folder-rule-allow"), ALLOW_CROSS_FOLDER_MODELS="true"
    )


def _versions(vertex: Vertex, display_name: str) -> list[dict[str, Any]]:
    [model] = vertex.models(display_name)
    return vertex.versions(model["name"])


def test_another_folder_cannot_add_a_version_or_take_the_default(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    theirs = bucket.upload(models.keras_a, "models/team-b/v1/model.keras")
    assert _post(server, theirs) == 200
    [v1] = _versions(vertex, "team-b")
    owner = v1["labels"][FOLDER_LABEL]
    assert owner.startswith("team-b-")
    published = bucket.names("registered/")

    attack = bucket.upload(
        models.keras_b, "models/team-a/x/model.keras", {"display_name": "team-b"}
    )
    assert _post(server, attack) == 200  # acknowledged: a rejection is final, never redelivered
    record = _record(bucket, attack)
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == "name.owned_by_another_folder"
    assert "ALLOW_CROSS_FOLDER_MODELS" in record["reason"]["message"]
    assert "download" not in record["timings"] and "validate" not in record["timings"]
    # Nothing registered, nothing published, the default where it was.
    [still] = _versions(vertex, "team-b")
    assert still["versionId"] == "1" and "default" in still["versionAliases"]
    assert bucket.names("registered/") == published

    # The owner's own folder keeps working, at any depth.
    again = bucket.upload(models.keras_b, "models/team-b/v2/model.keras")
    assert _post(server, again) == 200
    assert _record(bucket, again)["state"] == "registered"
    versions = _versions(vertex, "team-b")
    assert [v["versionId"] for v in versions] == ["1", "2"]
    assert {v["labels"][FOLDER_LABEL] for v in versions} == {owner}
    assert len(bucket.names("registered/")) > len(published)


def test_flat_uploads_share_the_prefix_and_cannot_take_a_folders_model(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    meta = {"display_name": "MyAwesomeModel"}
    for i, local in enumerate((models.keras_a, models.keras_b), start=1):
        flat = bucket.upload(local, f"models/my_model_v{i}.keras", meta)
        assert _post(server, flat) == 200
        assert _record(bucket, flat)["state"] == "registered"
    assert [v["versionId"] for v in _versions(vertex, "MyAwesomeModel")] == ["1", "2"]

    from_folder = bucket.upload(models.keras_a, "models/team-a/m.keras", meta)
    assert _post(server, from_folder) == 200
    assert _record(bucket, from_folder)["reason"]["code"] == "name.owned_by_another_folder"

    team = bucket.upload(models.keras_a, "models/team-c/v1/model.keras")
    assert _post(server, team) == 200
    flat_attack = bucket.upload(models.keras_b, "models/x_v9.keras", {"display_name": "team-c"})
    assert _post(server, flat_attack) == 200
    assert _record(bucket, flat_attack)["reason"]["code"] == "name.owned_by_another_folder"
    assert len(_versions(vertex, "team-c")) == 1


def test_a_model_without_the_label_is_claimed_by_its_first_upload_under_the_rule(
    server: str, services: Services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    from google.cloud.aiplatform_v1 import types

    client = make_registry(
        Settings(project=PROJECT, vertex_emulator_host=services.vertex_url)
    )._client
    model = types.Model(
        display_name="legacy",
        container_spec={"image_uri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"},
    )
    parent = f"projects/{PROJECT}/locations/{LOCATION}"
    client.upload_model(
        request=types.UploadModelRequest(parent=parent, model=model, model_id="legacy")
    ).result(timeout=30)

    first = bucket.upload(
        models.keras_a, "models/team-d/v1/model.keras", {"display_name": "legacy"}
    )
    assert _post(server, first) == 200
    assert _record(bucket, first)["state"] == "registered"
    other = bucket.upload(
        models.keras_b, "models/team-e/v1/model.keras", {"display_name": "legacy"}
    )
    assert _post(server, other) == 200
    assert _record(bucket, other)["reason"]["code"] == "name.owned_by_another_folder"
    assert len(_versions(vertex, "legacy")) == 2


def test_allow_cross_folder_models_lets_any_folder_add_versions(
    allowing_server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    theirs = bucket.upload(models.keras_a, "models/team-f/v1/model.keras")
    assert _post(allowing_server, theirs) == 200
    other = bucket.upload(
        models.keras_b, "models/team-g/v1/model.keras", {"display_name": "team-f"}
    )
    assert _post(allowing_server, other) == 200
    assert _record(bucket, other)["state"] == "registered"
    versions = _versions(vertex, "team-f")
    assert [v["versionId"] for v in versions] == ["1", "2"]
    # The label keeps naming the owner; the description names where the upload came from.
    assert versions[1]["labels"][FOLDER_LABEL] == versions[0]["labels"][FOLDER_LABEL]
    assert "models/team-g/v1/model.keras" in versions[1]["versionDescription"]


def test_the_setting_is_validated_naming_the_variable() -> None:
    from handlers.errors import SettingsError

    env = {"GOOGLE_CLOUD_PROJECT": PROJECT, "ALLOW_CROSS_FOLDER_MODELS": "sometimes"}
    with pytest.raises(SettingsError, match="ALLOW_CROSS_FOLDER_MODELS"):
        Settings.from_env(env)
    assert Settings.from_env({**env, "ALLOW_CROSS_FOLDER_MODELS": "true"}).allow_cross_folder_models
    assert not Settings.from_env({"GOOGLE_CLOUD_PROJECT": PROJECT}).allow_cross_folder_models
