"""The Vertex AI model-registry tutorial's own flow, end to end on the emulators.

The tutorial saves `my_model_v1.keras`, copies it to `gs://BUCKET/models/my_model_v1.keras`,
uploads it as `MyAwesomeModel`; later `my_model_v2.keras` becomes version 2 of the same model;
then it lists versions, takes the latest or a specific one, deploys one to an endpoint, splits
traffic and rolls back. Uploads go through the function over HTTP; the rest through `registrar`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from tests.conftest import (
    Bucket,
    Models,
    Services,
    Vertex,
    deliver,
    deliver_until_acked,
    function_env,
)

STATE = "registrar-state/uploads/"


def test_the_tutorials_two_files_become_one_model_with_two_versions(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    v1 = bucket.upload(models.keras_a, "models/my_model_v1.keras")
    assert deliver(function_client, v1) == 200
    v2 = bucket.upload(models.keras_b, "models/my_model_v2.keras")
    assert deliver(function_client, v2) == 200

    [model] = vertex.models()
    assert model["displayName"] == "my_model" and model["name"].endswith("/models/my_model")
    versions = vertex.versions(model["name"])
    assert [v["versionId"] for v in versions] == ["1", "2"]
    assert [v["labels"]["source-version"] for v in versions] == ["v1", "v2"]
    assert "Version from the path: v1." in versions[0]["description"]
    assert "default" in versions[1]["versionAliases"]
    assert bucket.record(v2)["display_name"] == "my_model"


def test_display_name_metadata_on_every_upload_names_the_model(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """`gcloud storage cp --custom-metadata=display_name=MyAwesomeModel,description=…`"""
    uploads = [
        bucket.upload(
            local,
            f"models/my_model_v{i}.keras",
            {"display_name": "MyAwesomeModel", "description": f"My awesome model, take {i}"},
        )
        for i, local in ((1, models.keras_a), (2, models.keras_b))
    ]
    assert [deliver(function_client, r) for r in uploads] == [200, 200]
    [model] = vertex.models("MyAwesomeModel")
    versions = vertex.versions(model["name"])
    assert [v["versionId"] for v in versions] == ["1", "2"]
    assert versions[1]["description"].startswith("My awesome model, take 2")
    assert versions[1]["labels"]["source-version"] == "v2"
    assert vertex.models("my_model") == []
    # the artifact is filed under the display name too (TF Serving's numbered layout)
    assert "/registered/MyAwesomeModel/tfs-sha256-" in versions[0]["artifactUri"]


def test_display_name_metadata_on_one_upload_only_makes_two_models(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """What the README warns about: the explicit name is the model's name, for that upload only."""
    v1 = bucket.upload(models.keras_a, "models/my_model_v1.keras")
    v2 = bucket.upload(
        models.keras_b, "models/my_model_v2.keras", {"display_name": "MyAwesomeModel"}
    )
    assert [deliver(function_client, r) for r in (v1, v2)] == [200, 200]
    assert sorted(m["displayName"] for m in vertex.models()) == ["MyAwesomeModel", "my_model"]
    bad = bucket.upload(models.keras_a, "models/my_model_v3.keras", {"display_name": " x"})
    assert deliver(function_client, bad) == 200
    record = bucket.record(bad)
    assert record["state"] == "rejected" and record["reason"]["code"] == "bad_display_name"


def test_the_tutorial_walk_versions_latest_specific_deploy_split_rollback(
    function_client, bucket: Bucket, vertex: Vertex, models: Models, registrar
) -> None:
    meta = {"display_name": "MyAwesomeModel"}
    for i, local in ((1, models.keras_a), (2, models.keras_b)):
        resource = bucket.upload(local, f"models/my_model_v{i}.keras", meta)
        assert deliver(function_client, resource) == 200

    code, listed = registrar("versions", "MyAwesomeModel")
    assert code == 0 and [v["version_id"] for v in listed["versions"]] == ["1", "2"]
    code, latest = registrar("show", "MyAwesomeModel@default")
    assert code == 0 and latest["version"]["version_id"] == "2"
    code, first = registrar("show", "MyAwesomeModel@1")
    assert code == 0 and first["version"]["source_uri"].endswith("/models/my_model_v1.keras")

    code, deployed = registrar("deploy", "MyAwesomeModel@1", "--endpoint", "my-endpoint")
    assert code == 0, deployed
    assert deployed["created_endpoint"] and deployed["operation"]["state"] == "succeeded"
    code, canary = registrar(
        "deploy", "MyAwesomeModel@default", "--endpoint", "my-endpoint", "--traffic", "20"
    )
    assert code == 0, canary
    by_version = {d["version_id"]: d for d in canary["deployed_models"]}
    assert {v: d["traffic_percent"] for v, d in by_version.items()} == {"1": 80, "2": 20}

    code, split = registrar("traffic", "my-endpoint", "MyAwesomeModel@2=50")
    assert code == 0 and {
        d["version_id"]: d["traffic_percent"] for d in split["deployed_models"]
    } == {
        "1": 50,
        "2": 50,
    }
    code, back = registrar("rollback", "--endpoint", "my-endpoint")
    assert code == 0 and back["undeployed"]["version_id"] == "2"
    assert back["traffic_split"] == {by_version["1"]["id"]: 100}


# ---- DEPLOY_ENDPOINT: the function starts a canary of each new default ------------------------
@pytest.fixture(scope="module")
def canary_server(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "DEPLOY_ENDPOINT": "tutorial-canary",
        "DEPLOY_TRAFFIC": "10",
        "PROMOTION_METRIC": "auc",
    }
    service = stack.start_function(env, log_dir=tmp_path_factory.mktemp("canary-server"))
    yield service.url
    service.stop()


def _endpoint(vertex: Vertex, endpoint_id: str) -> dict[str, Any]:
    reply = requests.get(f"{vertex.url}/v1/{vertex.parent}/endpoints/{endpoint_id}", timeout=5)
    reply.raise_for_status()
    return reply.json()


def test_deploy_endpoint_starts_a_canary_of_each_new_default_only(
    canary_server: str, bucket: Bucket, vertex: Vertex, models: Models, registrar
) -> None:
    def upload(i: int, local: Path, auc: float) -> dict[str, Any]:
        resource = bucket.upload(
            local, f"models/my_model_v{i}.keras", {"metrics": json.dumps({"auc": auc})}
        )
        deliver_until_acked(canary_server, resource)
        return bucket.record(resource)

    first = upload(1, models.keras_a, 0.80)  # the first version: default, the endpoint is made
    note = first["deployment"]
    assert note["state"] == "started" and note["endpoint_created"] is True
    assert note["endpoint"].endswith("/endpoints/tutorial-canary")
    assert note["operation"].startswith(note["endpoint"] + "/operations/")
    assert note["traffic_split"] == {"new": 100}  # nothing else serves: it takes everything
    code, state = registrar("operation", note["operation"], "--wait")
    assert code == 0 and state["state"] == "succeeded"

    second = upload(2, models.keras_b, 0.90)  # better: the new default, a 10% canary
    assert second["gate"]["decision"] == "promoted"
    assert second["deployment"]["state"] == "started"
    assert second["deployment"]["traffic_percent"] == 10
    endpoint = _endpoint(vertex, "tutorial-canary")
    versions = {d["id"]: d["modelVersionId"] for d in endpoint["deployedModels"]}
    assert {versions[k]: v for k, v in endpoint["trafficSplit"].items()} == {"1": 90, "2": 10}

    third = upload(3, models.keras_a, 0.70)  # worse: held by the gate, not deployed
    assert third["gate"]["decision"] == "held"
    assert third["deployment"]["state"] == "skipped"
    assert "did not become the default" in third["deployment"]["reason"]
    assert len(_endpoint(vertex, "tutorial-canary")["deployedModels"]) == 2

    code, back = registrar("rollback", "--endpoint", "tutorial-canary")
    assert code == 0 and back["undeployed"]["version_id"] == "2"

    # A version held for lack of metrics, promoted later by its metrics.json: that late promotion
    # starts the canary the registration would have started.
    held = bucket.upload(models.keras_b, "models/my_model/v4/model.keras")
    deliver_until_acked(canary_server, held)
    assert bucket.record(held)["deployment"]["state"] == "skipped"
    metrics = bucket.upload_bytes(b'{"auc": 0.95}', "models/my_model/v4/metrics.json")
    deliver_until_acked(canary_server, metrics)
    late = bucket.read_json(f"{STATE}models/my_model/v4/metrics.json/g{metrics['generation']}.json")
    (attached,) = late["uploads"]
    assert attached["gate"]["decision"] == "promoted"
    assert attached["deployment"]["state"] == "started"
    endpoint = _endpoint(vertex, "tutorial-canary")
    versions = {d["id"]: d["modelVersionId"] for d in endpoint["deployedModels"]}
    assert {versions[k]: v for k, v in endpoint["trafficSplit"].items()} == {"1": 90, "4": 10}
