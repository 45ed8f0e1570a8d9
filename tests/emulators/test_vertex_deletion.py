"""DeleteModelVersion / DeleteModel as Vertex documents them (through the SDK).

- "Deleting the only version in the Model is not allowed" and a version with DeployedModels cannot
  be deleted (`ModelServiceClient.delete_model_version` docstring); a Model cannot be deleted while
  an Endpoint has a DeployedModel based on it (`delete_model` docstring).
- "When you delete a model version that has the default alias assigned, the alias is
  automatically assigned to the next most recent version." (Model Registry, model-alias page.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.api_core import exceptions as api

from emulators.vertex import EmulatorServer, Store, start_in_thread
from tests.emulators.conftest import TODAY
from tests.emulators.helpers import IMAGE, upload


def _status(exc: api.GoogleAPICallError) -> str:
    return exc.response.json()["error"]["status"]


def _versions(gapic: Any, model: str) -> dict[str, list[str]]:
    return {v.version_id: list(v.version_aliases) for v in gapic.list_model_versions(name=model)}


def _delete_version(gapic: Any, name: str) -> None:
    gapic.delete_model_version(name=name, timeout=10).result(timeout=10)


def test_sdk_deleting_the_default_version_moves_default_to_the_newest(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    for _ in range(2):
        aip.Model.upload(
            display_name="churn",
            parent_model=model.resource_name,
            serving_container_image_uri=IMAGE,
            is_default_version=False,
        )
    registry = aip.models.ModelRegistry(model.resource_name)
    registry.add_version_aliases(["prod"], version="1")
    registry.delete_version("1")  # the default: allowed
    versions = {v.version_id: v.version_aliases for v in registry.list_versions()}
    assert versions == {"2": [], "3": ["default"]}  # the newest remaining, not the next id
    assert aip.Model(model.resource_name).version_id == "3"
    with pytest.raises(api.NotFound):
        aip.Model(model.resource_name, version="prod")  # its aliases went with it


def test_default_moves_to_the_newest_remaining_version(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    for _ in range(3):
        upload(gapic, parent_model=first.model)
    gapic.merge_version_aliases(name=f"{first.model}@2", version_aliases=["default"])
    _delete_version(gapic, f"{first.model}@4")  # not the default
    _delete_version(gapic, f"{first.model}@2")  # the default: moves to 3, the newest left
    assert _versions(gapic, first.model) == {"1": [], "3": ["default"]}
    _delete_version(gapic, f"{first.model}@default")
    assert _versions(gapic, first.model) == {"1": ["default"]}
    assert gapic.get_model(name=first.model).version_id == "1"


def test_the_only_version_cannot_be_deleted(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    with pytest.raises(api.BadRequest, match="only version") as caught:
        _delete_version(gapic, f"{first.model}@1")
    assert _status(caught.value) == "FAILED_PRECONDITION"
    assert _versions(gapic, first.model) == {"1": ["default"]}


# ---- deployed versions (the endpoint service's hook) -------------------------------------------


@pytest.fixture
def deployments() -> Iterator[tuple[EmulatorServer, set[tuple[str, str]], Any]]:
    """A fresh emulator whose deployment lookup answers from a set the test controls."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    server, url = start_in_thread(today=TODAY)
    deployed: set[tuple[str, str]] = set()
    server.store.set_deployment_lookup(lambda model, version: (model, version) in deployed)
    client = aiplatform_v1.ModelServiceClient(
        transport="rest", client_options={"api_endpoint": url}, credentials=AnonymousCredentials()
    )
    try:
        yield server, deployed, client
    finally:
        server.shutdown()
        server.server_close()


def test_a_deployed_version_cannot_be_deleted(
    deployments: tuple[EmulatorServer, set[tuple[str, str]], Any],
) -> None:
    server, deployed, gapic = deployments
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model)
    deployed.add((first.model, "2"))
    assert server.store.is_deployed(first.model, "2")
    assert not server.store.is_deployed(first.model, "1")

    with pytest.raises(api.BadRequest, match="deployed") as caught:
        _delete_version(gapic, f"{first.model}@2")
    assert _status(caught.value) == "FAILED_PRECONDITION"
    with pytest.raises(api.BadRequest, match="deployed") as caught:
        gapic.delete_model(name=first.model, timeout=10).result(timeout=10)
    assert _status(caught.value) == "FAILED_PRECONDITION"
    assert set(_versions(gapic, first.model)) == {"1", "2"}

    _delete_version(gapic, f"{first.model}@1")  # the default, not deployed: allowed
    assert _versions(gapic, first.model) == {"2": ["default"]}
    deployed.clear()  # undeployed
    gapic.delete_model(name=first.model, timeout=10).result(timeout=10)
    with pytest.raises(api.NotFound):
        gapic.get_model(name=first.model)


def test_the_lookup_is_replaceable_and_survives_reset() -> None:
    store = Store()
    assert not store.is_deployed("projects/p/locations/us-central1/models/m", "1")
    first = store.set_deployment_lookup(lambda _model, version: version == "1")
    assert first is None
    store.reset()
    assert store.is_deployed("projects/p/locations/us-central1/models/m", "1")
    previous = store.set_deployment_lookup(None)
    assert previous is not None and previous("any", "1")
    assert not store.is_deployed("projects/p/locations/us-central1/models/m", "1")
