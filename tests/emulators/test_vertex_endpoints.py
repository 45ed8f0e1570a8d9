"""The Vertex emulator's EndpointService, driven through the real SDK over REST.

High-level `aiplatform.Endpoint` calls first (the way a CLI would use them), then the GAPIC
`EndpointServiceClient` for each rule with an input that breaks it. Over REST the SDK raises the
HTTP-named exceptions (400 -> BadRequest, also for FAILED_PRECONDITION; 409 -> Conflict).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api

from emulators.vertex import AdminClient, Store, start_in_thread
from emulators.vertex.endpoints import EndpointStore
from tests.emulators.conftest import TODAY
from tests.emulators.helpers import IMAGE, PARENT, upload

MACHINE = "n1-standard-4"


def _status(exc: api.GoogleAPICallError) -> str:
    return exc.response.json()["error"]["status"]


def _endpoint_name(endpoint_id: str) -> str:
    return f"{PARENT}/endpoints/{endpoint_id}"


def _endpoints_client(base_url: str) -> Any:
    """`aiplatform_v1.EndpointServiceClient` over REST against the emulator."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.EndpointServiceClient(
        transport="rest",
        client_options={"api_endpoint": base_url},
        credentials=AnonymousCredentials(),
    )


@pytest.fixture
def endpoints(base_url: str) -> Any:
    return _endpoints_client(base_url)


def _create(endpoints: Any, endpoint_id: str = "", **fields: Any) -> Any:
    from google.cloud.aiplatform_v1 import types

    spec: dict[str, Any] = {"display_name": "churn-ep", **fields}
    op = endpoints.create_endpoint(
        parent=PARENT, endpoint=types.Endpoint(spec), endpoint_id=endpoint_id, timeout=10
    )
    return op.result(timeout=10)


def _deployed(model: str, *, machine_type: str | None = MACHINE, **fields: Any) -> Any:
    """A DeployedModel with dedicated resources (the only kind custom models support)."""
    from google.cloud.aiplatform_v1 import types

    spec: dict[str, Any] = {"model": model}
    if machine_type is not None:
        spec["dedicated_resources"] = {
            "machine_spec": {"machine_type": machine_type},
            "min_replica_count": 1,
            "max_replica_count": 1,
        }
    spec.update(fields)
    return types.DeployedModel(spec)


def _deploy(endpoints: Any, endpoint: str, deployed: Any, split: dict[str, int] | None) -> Any:
    op = endpoints.deploy_model(
        endpoint=endpoint, deployed_model=deployed, traffic_split=split or {}, timeout=10
    )
    return op.result(timeout=10).deployed_model


def _undeploy(endpoints: Any, endpoint: str, deployed_id: str, split: dict | None = None) -> None:
    op = endpoints.undeploy_model(
        endpoint=endpoint, deployed_model_id=deployed_id, traffic_split=split or {}, timeout=10
    )
    op.result(timeout=10)


# ---- the high-level SDK ------------------------------------------------------------------------


def test_sdk_create_get_and_list_endpoints(aip: Any) -> None:
    created = aip.Endpoint.create(
        display_name="churn-ep",
        endpoint_id="churn-ep",
        description="serves churn",
        labels={"team": "risk"},
        create_request_timeout=10,
    )
    assert created.resource_name == _endpoint_name("churn-ep")
    assert created.display_name == "churn-ep"
    assert created.labels == {"team": "risk"}
    assert created.traffic_split == {}
    assert created.list_models() == []
    other = aip.Endpoint.create(display_name="other")  # no id: the server picks a numeric one
    assert other.name.isdigit()

    fetched = aip.Endpoint("churn-ep")
    assert fetched.gca_resource.description == "serves churn"
    assert fetched.gca_resource.etag and fetched.gca_resource.create_time

    names = [e.resource_name for e in aip.Endpoint.list(filter='display_name="churn-ep"')]
    assert names == [created.resource_name]
    assert [e.name for e in aip.Endpoint.list(filter="labels.team=risk")] == ["churn-ep"]
    assert [e.name for e in aip.Endpoint.list(filter='endpoint="churn-ep"')] == ["churn-ep"]
    assert [e.name for e in aip.Endpoint.list(filter='endpoint!="churn-ep"')] == [other.name]
    ordered = aip.Endpoint.list(order_by="display_name desc")
    assert [e.display_name for e in ordered] == ["other", "churn-ep"]


def test_sdk_deploy_resolves_the_default_version_and_gives_it_all_traffic(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn",
        model_id="churn",
        artifact_uri="gs://models-bkt/churn/1/",
        serving_container_image_uri=IMAGE,
    )
    endpoint = aip.Endpoint.create(display_name="churn-ep", endpoint_id="churn-ep")
    endpoint.deploy(model=aip.Model("churn"), machine_type=MACHINE, min_replica_count=1)

    [deployed] = endpoint.list_models()
    assert deployed.id.isdigit()
    assert deployed.model == model.resource_name  # stored without '@'; the version is separate
    assert deployed.model_version_id == "1"
    assert deployed.display_name == "churn"  # the model's, as none was given
    resources = deployed.dedicated_resources
    assert resources.machine_spec.machine_type == MACHINE
    assert (resources.min_replica_count, resources.max_replica_count) == (1, 1)
    assert deployed.create_time
    assert endpoint.traffic_split == {deployed.id: 100}


def test_sdk_second_version_split_update_and_undeploy(aip: Any) -> None:
    first = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    second = aip.Model.upload(
        display_name="churn",
        parent_model=first.resource_name,
        serving_container_image_uri=IMAGE,
        is_default_version=False,
    )
    endpoint = aip.Endpoint.create(display_name="churn-ep")
    endpoint.deploy(model=first, traffic_percentage=100, machine_type=MACHINE)
    endpoint.deploy(model=second, traffic_percentage=20, machine_type="e2-standard-2")
    by_version = {d.model_version_id: d.id for d in endpoint.list_models()}
    assert endpoint.traffic_split == {by_version["1"]: 80, by_version["2"]: 20}

    endpoint.update(traffic_split={by_version["1"]: 50, by_version["2"]: 50})
    assert aip.Endpoint(endpoint.name).traffic_split == {by_version["1"]: 50, by_version["2"]: 50}

    endpoint.undeploy(deployed_model_id=by_version["1"])  # the SDK moves its 50% to the other
    assert endpoint.traffic_split == {by_version["2"]: 100}
    endpoint.undeploy(deployed_model_id=by_version["2"])  # the last one: the split ends up empty
    assert endpoint.traffic_split == {}
    assert endpoint.list_models() == []


def test_sdk_deployed_version_cannot_be_deleted_until_undeployed(aip: Any) -> None:
    first = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    second = aip.Model.upload(
        display_name="churn", parent_model=first.resource_name, serving_container_image_uri=IMAGE
    )
    assert second.version_id == "2"
    endpoint = aip.Endpoint.create(display_name="churn-ep")
    endpoint.deploy(model=second, machine_type=MACHINE)  # `@2` in the request
    registry = aip.models.ModelRegistry(first.resource_name)

    with pytest.raises(api.BadRequest, match="deployed") as caught:
        registry.delete_version("2")
    assert _status(caught.value) == "FAILED_PRECONDITION"
    with pytest.raises(api.BadRequest, match="deployed") as caught:
        aip.Model(first.resource_name).delete()
    assert _status(caught.value) == "FAILED_PRECONDITION"
    registry.delete_version("1")  # not deployed: allowed

    endpoint.undeploy_all()
    aip.Model(first.resource_name).delete()  # its only version, now undeployed
    with pytest.raises(api.NotFound):
        aip.Model(first.resource_name)


def test_sdk_delete_endpoint_refused_while_models_are_deployed(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    endpoint = aip.Endpoint.create(display_name="churn-ep", endpoint_id="churn-ep")
    endpoint.deploy(model=model, machine_type=MACHINE)
    with pytest.raises(api.BadRequest, match="undeploy") as caught:
        endpoint.delete()
    assert _status(caught.value) == "FAILED_PRECONDITION"
    endpoint.delete(force=True)  # undeploys first
    with pytest.raises(api.NotFound):
        aip.Endpoint("churn-ep").gca_resource  # noqa: B018 (the SDK's Endpoint reads lazily)


def test_sdk_deploy_without_machine_type_uses_the_sdk_default(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    endpoint = aip.Endpoint.create(display_name="churn-ep")
    endpoint.deploy(model=model)  # supported types = [DEDICATED_RESOURCES] -> n1-standard-2
    [deployed] = endpoint.list_models()
    assert deployed.dedicated_resources.machine_spec.machine_type == "n1-standard-2"


def test_sdk_waits_for_slow_endpoint_operations(aip: Any, admin: AdminClient) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    admin.config(operation_polls=2)
    endpoint = aip.Endpoint.create(display_name="churn-ep")
    endpoint.deploy(model=model, machine_type=MACHINE)
    endpoint.undeploy_all()
    # each operation: 2 answers `done: false`, then the done one; create, deploy, undeploy
    assert admin.state()["calls"]["GetOperation"] == 9


def test_sdk_predict_is_not_served(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    endpoint = aip.Endpoint.create(display_name="churn-ep")
    endpoint.deploy(model=model, machine_type=MACHINE)
    with pytest.raises(api.MethodNotImplemented, match="does not serve predictions"):
        endpoint.predict(instances=[[1.0, 2.0]], timeout=10)


# ---- CreateEndpoint / GetEndpoint / ListEndpoints / DeleteEndpoint -----------------------------


def test_create_endpoint_rules(endpoints: Any) -> None:
    with pytest.raises(api.BadRequest, match="display_name is required"):
        _create(endpoints, display_name="")
    with pytest.raises(api.BadRequest, match="maximum is 128"):
        _create(endpoints, display_name="x" * 129)
    _create(endpoints, display_name="é" * 128)  # characters, not bytes
    for bad in ("Churn", "churn-", "-churn", "0123", "1234567890", "churn_ep", "a" * 64):
        with pytest.raises(api.BadRequest, match="endpoint_id"):
            _create(endpoints, endpoint_id=bad)
    for good in ("c", "churn-ep-2", "123456789", "a" * 63):
        assert _create(endpoints, endpoint_id=good).name == _endpoint_name(good)
    with pytest.raises(api.Conflict, match="already exists"):
        _create(endpoints, endpoint_id="churn-ep-2")
    with pytest.raises(api.BadRequest, match="label"):
        _create(endpoints, labels={"Team": "risk"})
    with pytest.raises(api.BadRequest, match="do not exist"):
        _create(endpoints, traffic_split={"1": 100})
    with pytest.raises(api.BadRequest, match="Only one of"):
        _create(
            endpoints,
            network="projects/1/global/networks/n",
            private_service_connect_config={"enable_private_service_connect": True},
        )


def test_create_endpoint_refuses_unknown_fields_and_bad_locations(base_url: str) -> None:
    url = f"{base_url}/v1/{PARENT}/endpoints"
    reply = requests.post(url, json={"displayName": "x", "replicas": 2}, timeout=10)
    assert reply.status_code == 400
    assert 'Unknown name "replicas"' in reply.json()["error"]["message"]
    reply = requests.post(
        f"{base_url}/v1/projects/emu-project/locations/global/endpoints",
        json={"displayName": "x"},
        timeout=10,
    )
    assert reply.status_code == 400 and "not supported" in reply.json()["error"]["message"]
    reply = requests.post(url, json={"display_name": "snake"}, timeout=10)  # both spellings
    assert reply.status_code == 200 and reply.json()["done"] is True
    assert reply.json()["response"]["@type"].endswith("aiplatform.v1.Endpoint")


def test_get_list_and_delete_unknown_endpoints(endpoints: Any) -> None:
    with pytest.raises(api.NotFound):
        endpoints.get_endpoint(name=_endpoint_name("nope"))
    with pytest.raises(api.NotFound):
        endpoints.delete_endpoint(name=_endpoint_name("nope")).result(timeout=10)
    _create(endpoints, endpoint_id="churn-ep")
    endpoints.delete_endpoint(name=_endpoint_name("churn-ep")).result(timeout=10)
    with pytest.raises(api.NotFound):
        endpoints.get_endpoint(name=_endpoint_name("churn-ep"))


def test_list_endpoints_pages_filters_and_orders(endpoints: Any) -> None:
    from google.cloud.aiplatform_v1 import types

    for i in range(5):
        _create(endpoints, endpoint_id=f"ep-{i}", display_name=f"ep {4 - i}")
    first = endpoints.list_endpoints(
        request=types.ListEndpointsRequest(parent=PARENT, page_size=2), timeout=10
    )
    assert len(first.endpoints) == 2 and first.next_page_token
    assert [e.name.rsplit("/", 1)[1] for e in first] == [f"ep-{i}" for i in range(5)]  # all pages
    ordered = endpoints.list_endpoints(
        request=types.ListEndpointsRequest(parent=PARENT, order_by="display_name"), timeout=10
    )
    assert [e.display_name for e in ordered] == [f"ep {i}" for i in range(5)]
    only = endpoints.list_endpoints(request={"parent": PARENT, "filter": 'endpoint="ep-3"'})
    assert [e.display_name for e in only] == ["ep 1"]
    for bad in ("base_model_name=text-bison", "model=ep-1", "display_name>x", "labels.a!=b"):
        with pytest.raises(api.BadRequest):
            list(endpoints.list_endpoints(request={"parent": PARENT, "filter": bad}))
    with pytest.raises(api.BadRequest, match=r"'endpoint=ep-3'.*quote it"):  # documented forms only
        list(endpoints.list_endpoints(request={"parent": PARENT, "filter": "endpoint=ep-3"}))
    with pytest.raises(api.BadRequest, match="order_by"):
        list(endpoints.list_endpoints(request={"parent": PARENT, "order_by": "etag"}))
    with pytest.raises(api.BadRequest, match="page_token"):
        list(endpoints.list_endpoints(request={"parent": PARENT, "page_token": "garbage"}))


# ---- DeployModel -------------------------------------------------------------------------------


def test_deploy_records_the_resolved_version_for_ids_aliases_and_default(
    endpoints: Any, gapic: Any
) -> None:
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model, version_aliases=["challenger"])
    ep = _create(endpoints).name
    by_ref = {}
    for ref in ("churn", "churn@1", "churn@challenger", "churn@default"):
        deployed = _deploy(endpoints, ep, _deployed(f"{PARENT}/models/{ref}"), None)
        assert deployed.model == first.model
        by_ref[ref] = deployed.model_version_id
    assert by_ref == {"churn": "1", "churn@1": "1", "churn@challenger": "2", "churn@default": "1"}
    # the endpoint's split is not touched by a deploy without one: nobody has traffic yet
    assert dict(endpoints.get_endpoint(name=ep).traffic_split) == {}


def test_deploy_traffic_split_rules(endpoints: Any, gapic: Any) -> None:
    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    for split, message in (
        ({"0": 90}, "add up to 90"),
        ({"0": 120, "5": -20}, "between 0 and 100"),
        ({"0": 50, "12345": 50}, r"DeployedModel ID\(s\) \[12345\] do not exist"),
    ):
        with pytest.raises(api.BadRequest, match=message):
            _deploy(endpoints, ep, _deployed(model), split)
    first = _deploy(endpoints, ep, _deployed(model), {"0": 100})
    assert dict(endpoints.get_endpoint(name=ep).traffic_split) == {first.id: 100}
    second = _deploy(endpoints, ep, _deployed(model, id="42"), {first.id: 30, "0": 70})
    assert second.id == "42"
    assert dict(endpoints.get_endpoint(name=ep).traffic_split) == {first.id: 30, "42": 70}
    third = _deploy(endpoints, ep, _deployed(model), {first.id: 100})  # "0" absent: no traffic
    endpoint = endpoints.get_endpoint(name=ep)
    assert dict(endpoint.traffic_split) == {first.id: 100}
    assert {d.id for d in endpoint.deployed_models} == {first.id, "42", third.id}


def test_deployed_model_id_rules(endpoints: Any, gapic: Any) -> None:
    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    for bad in ("abc", "12345678901", "-1"):
        with pytest.raises(api.BadRequest, match=r"DeployedModel\.id"):
            _deploy(endpoints, ep, _deployed(model, id=bad), None)
    _deploy(endpoints, ep, _deployed(model, id="7"), None)
    with pytest.raises(api.Conflict, match="already exists"):
        _deploy(endpoints, ep, _deployed(model, id="7"), None)
    other = _create(endpoints).name  # ids are per endpoint
    assert _deploy(endpoints, other, _deployed(model, id="7"), None).id == "7"


def test_deploy_model_must_exist(endpoints: Any, gapic: Any) -> None:
    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    for ref in (f"{PARENT}/models/nope", f"{model}@9", f"{model}@no-such-alias"):
        with pytest.raises(api.NotFound):
            _deploy(endpoints, ep, _deployed(ref), None)
    with pytest.raises(api.BadRequest, match="resource name"):
        _deploy(endpoints, ep, _deployed("models/churn"), None)
    with pytest.raises(api.BadRequest, match="model is required"):
        _deploy(endpoints, ep, _deployed(""), None)
    with pytest.raises(api.NotFound, match="Endpoint"):
        _deploy(endpoints, _endpoint_name("nope"), _deployed(model), None)


def test_deploy_resource_rules(endpoints: Any, gapic: Any) -> None:
    from google.cloud.aiplatform_v1 import types

    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    with pytest.raises(api.BadRequest, match="'automatic_resources' is not supported"):
        automatic = {"min_replica_count": 1, "max_replica_count": 1}
        _deploy(
            endpoints, ep, _deployed(model, machine_type=None, automatic_resources=automatic), None
        )
    with pytest.raises(api.BadRequest, match="prediction_resources is required"):
        _deploy(endpoints, ep, _deployed(model, machine_type=None), None)
    for bad in ("n1-standard-1", "n1-highcpu-2", "e2-micro", "z9-mega-3", "N1-STANDARD-2"):
        with pytest.raises(api.BadRequest, match="not supported for prediction"):
            _deploy(endpoints, ep, _deployed(model, machine_type=bad), None)
    for good in (
        "n1-highmem-8",
        "e2-highcpu-32",
        "n2-standard-4",
        "a2-highgpu-1g",
        "g2-standard-8",
    ):
        _deploy(endpoints, ep, _deployed(model, machine_type=good), None)

    def dedicated(**resources: Any) -> Any:
        spec = {"machine_spec": {"machine_type": MACHINE}, **resources}
        return types.DeployedModel(model=model, dedicated_resources=spec)

    with pytest.raises(api.BadRequest, match="min_replica_count must be greater"):
        _deploy(endpoints, ep, dedicated(min_replica_count=0), None)
    with pytest.raises(api.BadRequest, match="max_replica_count"):
        _deploy(endpoints, ep, dedicated(min_replica_count=3, max_replica_count=2), None)
    scaled = _deploy(endpoints, ep, dedicated(min_replica_count=2), None)
    assert scaled.dedicated_resources.max_replica_count == 2  # defaults to min
    with pytest.raises(api.BadRequest, match="accelerator"):
        spec = {"machine_type": "n1-standard-4", "accelerator_count": 1}
        _deploy(endpoints, ep, dedicated(machine_spec=spec, min_replica_count=1), None)
    gpu = {
        "machine_type": "n1-standard-4",
        "accelerator_type": types.AcceleratorType.NVIDIA_TESLA_T4,
        "accelerator_count": 1,
    }
    deployed = _deploy(endpoints, ep, dedicated(machine_spec=gpu, min_replica_count=1), None)
    assert deployed.dedicated_resources.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4"
    default = _deploy(endpoints, ep, dedicated(machine_spec={}, min_replica_count=1), None)
    assert default.dedicated_resources.machine_spec.machine_type == "n1-standard-2"  # proto doc


def test_deploy_display_name_rules(endpoints: Any, gapic: Any) -> None:
    model = upload(gapic, model_id="churn", display_name="Churn model").model
    ep = _create(endpoints).name
    assert _deploy(endpoints, ep, _deployed(model), None).display_name == "Churn model"
    assert _deploy(endpoints, ep, _deployed(model, display_name="v1"), None).display_name == "v1"
    with pytest.raises(api.BadRequest, match="display_name"):
        _deploy(endpoints, ep, _deployed(model, display_name="x" * 129), None)


# ---- UndeployModel / UpdateEndpoint / MutateDeployedModel ------------------------------------


def test_undeploy_rules(endpoints: Any, gapic: Any) -> None:
    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    a = _deploy(endpoints, ep, _deployed(model, id="1"), {"0": 100}).id
    b = _deploy(endpoints, ep, _deployed(model, id="2"), {a: 60, "0": 40}).id
    c = _deploy(endpoints, ep, _deployed(model, id="3"), None).id  # no traffic
    with pytest.raises(api.NotFound):
        _undeploy(endpoints, ep, "99")
    with pytest.raises(api.BadRequest, match="traffic") as caught:
        _undeploy(endpoints, ep, a)  # still has 60% and others remain
    assert _status(caught.value) == "FAILED_PRECONDITION"
    with pytest.raises(api.BadRequest, match="the one being undeployed"):
        _undeploy(endpoints, ep, a, {a: 10, b: 90})
    with pytest.raises(api.BadRequest, match="do not exist"):
        _undeploy(endpoints, ep, a, {b: 50, "77": 50})
    _undeploy(endpoints, ep, c)  # no traffic: no split needed
    _undeploy(endpoints, ep, a, {a: 0, b: 100})
    endpoint = endpoints.get_endpoint(name=ep)
    assert dict(endpoint.traffic_split) == {b: 100}
    assert [d.id for d in endpoint.deployed_models] == [b]
    _undeploy(endpoints, ep, b)  # the last one, even with 100%: the split ends up empty
    endpoint = endpoints.get_endpoint(name=ep)
    assert not endpoint.deployed_models and not endpoint.traffic_split


def test_update_endpoint_rules(endpoints: Any, gapic: Any) -> None:
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import field_mask_pb2

    def update(endpoint: Any, *paths: str) -> Any:
        mask = field_mask_pb2.FieldMask(paths=list(paths))
        return endpoints.update_endpoint(endpoint=endpoint, update_mask=mask, timeout=10)

    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints, labels={"team": "risk"})
    a = _deploy(endpoints, ep.name, _deployed(model), {"0": 100}).id
    b = _deploy(endpoints, ep.name, _deployed(model), None).id
    current = endpoints.get_endpoint(name=ep.name)

    changed = types.Endpoint(current)
    changed.display_name = "renamed"
    changed.traffic_split = {a: 25, b: 75}
    changed.description = "ignored: not in the mask"
    updated = update(changed, "display_name", "traffic_split")
    assert updated.display_name == "renamed" and dict(updated.traffic_split) == {a: 25, b: 75}
    assert updated.description == "" and dict(updated.labels) == {"team": "risk"}
    assert updated.etag != current.etag

    stale = types.Endpoint(current)  # carries the etag from before the update
    with pytest.raises(api.Conflict, match="etag") as caught:
        update(stale, "display_name")
    assert _status(caught.value) == "ABORTED"

    fresh = endpoints.get_endpoint(name=ep.name)
    for split, message in (({a: 50}, "add up to 50"), ({a: 50, "9": 50}, "do not exist")):
        bad = types.Endpoint(fresh)
        bad.traffic_split = split
        with pytest.raises(api.BadRequest, match=message):
            update(bad, "traffic_split")
    for path, message in (
        ("deployed_models", "output-only"),
        ("network", "cannot be updated"),
        ("bogus", "Invalid update_mask"),
    ):
        with pytest.raises(api.BadRequest, match=message):
            update(types.Endpoint(fresh), path)
    with pytest.raises(api.BadRequest, match="update_mask is required"):
        update(types.Endpoint(fresh))
    cleared = types.Endpoint(fresh)
    cleared.traffic_split = {}
    cleared.labels = {}
    result = update(cleared, "traffic_split", "labels")  # an empty split: no traffic
    assert not result.traffic_split and not result.labels
    missing = types.Endpoint(name=_endpoint_name("nope"), display_name="x")
    with pytest.raises(api.NotFound):
        update(missing, "display_name")


def test_mutate_deployed_model(endpoints: Any, gapic: Any) -> None:
    from google.cloud.aiplatform_v1 import types
    from google.protobuf import field_mask_pb2

    def mutate(deployed: Any, *paths: str) -> Any:
        op = endpoints.mutate_deployed_model(
            endpoint=ep,
            deployed_model=deployed,
            update_mask=field_mask_pb2.FieldMask(paths=list(paths)),
            timeout=10,
        )
        return op.result(timeout=10).deployed_model

    model = upload(gapic, model_id="churn").model
    ep = _create(endpoints).name
    deployed_id = _deploy(endpoints, ep, _deployed(model), None).id
    spec = {"min_replica_count": 2, "max_replica_count": 5}
    change = types.DeployedModel(id=deployed_id, dedicated_resources=spec)
    paths = ("dedicated_resources.min_replica_count", "dedicated_resources.max_replica_count")
    mutated = mutate(change, *paths)
    assert (
        mutated.dedicated_resources.min_replica_count,
        mutated.dedicated_resources.max_replica_count,
    ) == (2, 5)
    assert mutated.dedicated_resources.machine_spec.machine_type == MACHINE  # untouched
    with pytest.raises(api.BadRequest, match="cannot be mutated"):
        mutate(types.DeployedModel(id=deployed_id, display_name="x"), "display_name")
    with pytest.raises(api.BadRequest, match="max_replica_count"):
        low = types.DeployedModel(id=deployed_id, dedicated_resources={"max_replica_count": 1})
        mutate(low, "dedicated_resources.max_replica_count")
    with pytest.raises(api.NotFound):
        mutate(types.DeployedModel(id="999", dedicated_resources=spec), *paths)


# ---- operations, admin, persistence, races -----------------------------------------------------


def test_operations_are_served_on_ui_and_v1_paths(base_url: str, admin: AdminClient) -> None:
    admin.config(operation_polls=1)
    reply = requests.post(
        f"{base_url}/v1/{PARENT}/endpoints", json={"displayName": "x"}, timeout=10
    )
    op = reply.json()
    assert "done" not in op and "response" not in op
    assert op["metadata"]["@type"].endswith("CreateEndpointOperationMetadata")
    assert "done" not in requests.get(f"{base_url}/ui/{op['name']}", timeout=10).json()
    first = requests.get(f"{base_url}/ui/{op['name']}", timeout=10).json()
    assert first["done"] is True
    again = requests.get(f"{base_url}/v1/{op['name']}", timeout=10).json()
    assert again["response"]["name"].startswith(f"{PARENT}/endpoints/")
    missing = requests.get(f"{base_url}/v1/{PARENT}/endpoints/1/operations/999", timeout=10)
    assert missing.status_code == 404


def test_admin_state_and_reset_include_endpoints(endpoints: Any, admin: AdminClient) -> None:
    _create(endpoints, endpoint_id="churn-ep")
    state = admin.state()
    assert list(state["endpoints"]) == [_endpoint_name("churn-ep")]
    assert state["calls"]["CreateEndpoint"] == 1
    admin.reset()
    assert admin.state()["endpoints"] == {}


def test_faults_apply_to_endpoint_rpcs(endpoints: Any, admin: AdminClient) -> None:
    admin.fault("GetEndpoint", 404)
    _create(endpoints, endpoint_id="churn-ep")
    with pytest.raises(api.NotFound):
        endpoints.get_endpoint(name=_endpoint_name("churn-ep"))
    assert endpoints.get_endpoint(name=_endpoint_name("churn-ep")).display_name == "churn-ep"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[Any] = []

    def start() -> tuple[Any, Any, Any]:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import aiplatform_v1

        server, url = start_in_thread(state_file=str(tmp_path / "vertex.json"), today=TODAY)
        servers.append(server)
        options = {"api_endpoint": url}
        creds = AnonymousCredentials()
        models = aiplatform_v1.ModelServiceClient(
            transport="rest", client_options=options, credentials=creds
        )
        eps = aiplatform_v1.EndpointServiceClient(
            transport="rest", client_options=options, credentials=creds
        )
        return server, models, eps

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_endpoints_persist_in_the_state_file(fresh_server: Any, tmp_path: Path) -> None:
    server, models, eps = fresh_server()
    first = upload(models, model_id="churn")
    upload(models, parent_model=first.model)
    ep = _create(eps, endpoint_id="churn-ep").name
    deployed = _deploy(eps, ep, _deployed(f"{first.model}@2"), {"0": 100})
    server.shutdown()
    server.server_close()
    assert (tmp_path / "vertex.json.endpoints").exists()

    _, models, eps = fresh_server()  # a new process would see the same
    endpoint = eps.get_endpoint(name=ep)
    assert [d.id for d in endpoint.deployed_models] == [deployed.id]
    assert dict(endpoint.traffic_split) == {deployed.id: 100}
    with pytest.raises(api.BadRequest, match="deployed"):  # the lookup is wired again
        models.delete_model_version(name=f"{first.model}@2").result(timeout=10)


def test_deployment_lookup_answers_per_version() -> None:
    store = Store()
    endpoints = EndpointStore(store)
    model = f"{PARENT}/models/churn"
    store.upload_model("emu-project", "us-central1", _upload_body("churn"))
    store.upload_model("emu-project", "us-central1", _upload_body(parent_model=model))
    ep = endpoints.create_endpoint("emu-project", "us-central1", {"displayName": "e"}, {})
    name = ep["response"]["name"]
    spec = {"model": f"{model}@2", "dedicatedResources": {"machineSpec": {}, "minReplicaCount": 1}}
    endpoints.deploy_model(name, {"deployedModel": spec})
    assert store.is_deployed(model, "2") and not store.is_deployed(model, "1")
    assert endpoints.deployments(f"{model}@2") == [
        {
            "endpoint": name,
            "deployedModelId": endpoints.get_endpoint(name)["deployedModels"][0]["id"],
        }
    ]


def test_deploy_rolls_back_when_the_version_is_deleted_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DeployModel resolves the version, then records; a delete in between must not leave a
    deployment of a deleted version behind."""
    store = Store()
    endpoints = EndpointStore(store)
    model = f"{PARENT}/models/churn"
    store.upload_model("emu-project", "us-central1", _upload_body("churn"))
    store.upload_model("emu-project", "us-central1", _upload_body(parent_model=model))
    name = endpoints.create_endpoint("emu-project", "us-central1", {"displayName": "e"}, {})[
        "response"
    ]["name"]
    real_get = store.get_model
    calls = []

    def racing_get(ref: str) -> dict[str, Any]:
        result = real_get(ref)
        if not calls:  # right after DeployModel resolved the version, another client deletes it
            store.delete_model_version(f"{model}@2")
        calls.append(ref)
        return result

    monkeypatch.setattr(store, "get_model", racing_get)
    spec = {"model": f"{model}@2", "dedicatedResources": {"machineSpec": {}, "minReplicaCount": 1}}
    from emulators.vertex.errors import ApiError

    with pytest.raises(ApiError, match="deleted while it was being deployed"):
        endpoints.deploy_model(name, {"deployedModel": spec, "trafficSplit": {"0": 100}})
    endpoint = endpoints.get_endpoint(name)
    assert "deployedModels" not in endpoint and "trafficSplit" not in endpoint


def _upload_body(model_id: str = "", parent_model: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"displayName": "churn", "containerSpec": {"imageUri": IMAGE}},
    }
    if model_id:
        body["modelId"] = model_id
    if parent_model:
        body["parentModel"] = parent_model
    return body
