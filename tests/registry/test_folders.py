"""The folder rule's registry side (handlers/registry/folders.py, VertexRegistry.model_label and
the check inside ensure_version), against the Vertex emulator through the real GAPIC REST client."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

import pytest

from emulators.vertex import AdminClient
from handlers.errors import PermanentError, TransientError
from handlers.registry import folders
from handlers.registry.folders import FOLDER_LABEL
from handlers.registry.interface import UPLOAD_KEY_LABEL, VersionRequest
from handlers.registry.vertex import DEFAULT_RETRY, VertexRegistry, make_registry
from handlers.settings import Settings

PROJECT = "vertex-test"
PARENT = f"projects/{PROJECT}/locations/us-central1"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
SETTINGS = Settings(project=PROJECT)


@pytest.fixture(scope="module")
def client(emulator_url: str) -> Any:
    return make_registry(Settings(project=PROJECT, vertex_emulator_host=emulator_url))._client


@pytest.fixture
def registry(client: Any, admin: AdminClient) -> VertexRegistry:
    return VertexRegistry(
        client,
        project=PROJECT,
        location="us-central1",
        retry=DEFAULT_RETRY.with_delay(initial=0.001, maximum=0.01),
        rpc_timeout=10,
        operation_timeout=10,
        poll_initial=0.01,
    )


def _request(key: str, folder: str | None, name: str = "churn") -> VersionRequest:
    labels = {UPLOAD_KEY_LABEL: key, **({FOLDER_LABEL: folder} if folder else {})}
    return VersionRequest(
        display_name=name,
        artifact_uri=f"gs://registry-bkt/registered/{key}/",
        serving_image=IMAGE,
        description=f"upload {key}",
        labels=labels,
    )


def _owner(registry: VertexRegistry, source: str, name: str = "churn") -> str:
    return folders.owner_label(
        registry, name, bucket="b", source_path=source, uri=f"gs://b/{source}", settings=SETTINGS
    )


def test_folder_of_is_the_top_level_folder_or_the_prefix_for_flat_uploads() -> None:
    assert folders.folder_of("models/team-a/churn/v1/model.keras", SETTINGS) == "models/team-a/"
    assert folders.folder_of("models/team-a/model.keras", SETTINGS) == "models/team-a/"
    assert folders.folder_of("models/team-a/v1/", SETTINGS) == "models/team-a/"
    assert folders.folder_of("models/my_model_v1.keras", SETTINGS) == "models/"
    assert folders.folder_of("models/my_model_v1/", SETTINGS) == "models/"  # flat SavedModel


def test_labels_are_readable_and_distinct_per_bucket_and_folder() -> None:
    a = folders.folder_label("b", "models/Team A/", SETTINGS)
    assert a.startswith("team-a-") and len(a) <= 63
    assert folders.folder_label("b", "models/", SETTINGS).startswith("prefix-")
    assert a != folders.folder_label("b", "models/team-a/", SETTINGS)
    assert a != folders.folder_label("other", "models/Team A/", SETTINGS)


def test_a_new_model_belongs_to_the_uploading_folder(registry: VertexRegistry) -> None:
    assert registry.model_label("churn", FOLDER_LABEL) is None
    mine = _owner(registry, "models/team-a/v1/model.keras")
    assert mine == folders.folder_label("b", "models/team-a/", SETTINGS)
    registry.ensure_version(_request("k1", mine))
    assert registry.model_label("churn", FOLDER_LABEL) == mine
    assert _owner(registry, "models/team-a/v2/model.keras") == mine


def test_another_folder_is_refused_unless_allowed(registry: VertexRegistry) -> None:
    owner = _owner(registry, "models/team-b/v1/model.keras")
    registry.ensure_version(_request("k1", owner))
    with pytest.raises(PermanentError) as caught:
        _owner(registry, "models/team-a/x/model.keras")
    assert caught.value.code == "name.owned_by_another_folder"
    assert "ALLOW_CROSS_FOLDER_MODELS" in str(caught.value)
    allowed = replace(SETTINGS, allow_cross_folder_models=True)
    label = folders.owner_label(
        registry, "churn", bucket="b", source_path="models/team-a/x/model.keras", uri="u",
        settings=allowed,
    )  # fmt: skip
    assert label == owner  # the version keeps naming the model's owner


def test_a_model_with_no_folder_label_is_claimed_by_its_first_upload_under_the_rule(
    registry: VertexRegistry, client: Any
) -> None:
    from google.cloud.aiplatform_v1 import types

    model = types.Model(display_name="churn", container_spec={"image_uri": IMAGE})
    client.upload_model(
        request=types.UploadModelRequest(parent=PARENT, model=model, model_id="churn")
    ).result(timeout=10)
    assert registry.model_label("churn", FOLDER_LABEL) is None
    mine = _owner(registry, "models/team-c/v1/model.keras")
    registry.ensure_version(replace(_request("k1", mine), make_default=False))
    # The default (hand-made) version has no label: the owner is read from the versions.
    assert registry.model_label("churn", FOLDER_LABEL) == mine
    with pytest.raises(PermanentError):
        _owner(registry, "models/team-d/v1/model.keras")


def test_ensure_version_refuses_a_model_another_folder_created_meanwhile(
    registry: VertexRegistry,
) -> None:
    """Both folders passed the check before download (no model yet); the second to register asks
    for redelivery instead of adding its version, and its redelivery's check refuses it."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def register(key: str, folder: str) -> None:
        barrier.wait()
        try:
            outcomes[key] = registry.ensure_version(_request(key, folder))
        except TransientError as exc:
            outcomes[key] = exc

    threads = [
        threading.Thread(target=register, args=("k1", "team-a-1")),
        threading.Thread(target=register, args=("k2", "team-b-2")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes.values() if isinstance(o, TransientError)]
    assert len(errors) == 1 and errors[0].code == "folder_owner_changed", outcomes
    [model] = registry.list_models("churn")
    assert len(registry.list_versions(model.model)) == 1


def test_a_flat_first_model_also_takes_versions_from_its_namesake_folder_only(
    registry: VertexRegistry,
) -> None:
    flat = _owner(registry, "models/churn_v1.keras")
    registry.ensure_version(_request("k1", flat))
    assert _owner(registry, "models/churn_v2.keras") == flat
    assert _owner(registry, "models/churn/v3/model.keras") == flat  # models/<name>/<version>/
    with pytest.raises(PermanentError):
        _owner(registry, "models/team-a/churn/model.keras")


def test_a_folder_first_model_refuses_flat_uploads_naming_it(registry: VertexRegistry) -> None:
    registry.ensure_version(_request("k1", _owner(registry, "models/churn/v1/model.keras")))
    with pytest.raises(PermanentError):
        _owner(registry, "models/churn_v2.keras")
