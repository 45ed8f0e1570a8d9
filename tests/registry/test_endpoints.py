"""`EndpointRegistry` against the Vertex emulator's EndpointService (real GAPIC REST clients),
and the traffic arithmetic it uses."""

from __future__ import annotations

import pytest

from emulators.vertex import AdminClient
from handlers.errors import PermanentError
from handlers.registry.endpoints import (
    NEW_DEPLOYMENT,
    EndpointRegistry,
    make_endpoint_registry,
    proportional,
    split_with,
    split_with_new,
    split_without,
)
from handlers.registry.interface import UPLOAD_KEY_LABEL, VersionRequest
from handlers.registry.vertex import DEFAULT_RETRY, ModelNotFound
from tests.conftest import make_settings

PROJECT = "endpoint-test"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


# ---- traffic arithmetic ------------------------------------------------------------------------
def test_proportional_shares_add_up_exactly() -> None:
    assert proportional({"a": 70, "b": 30}, 90) == {"a": 63, "b": 27}
    assert proportional({"a": 1, "b": 1, "c": 1}, 100) == {"a": 34, "b": 33, "c": 33}
    assert sum(proportional({"a": 3, "b": 5, "c": 11}, 77).values()) == 77
    assert proportional({"a": 0}, 100) == {} and proportional({"a": 5}, 0) == {}


@pytest.mark.parametrize(
    ("current", "deployed", "percent", "expected"),
    [
        ({}, [], 10, {NEW_DEPLOYMENT: 100}),  # the first deployment always takes everything
        ({"1": 100}, ["1"], 10, {"1": 90, NEW_DEPLOYMENT: 10}),
        ({"1": 70, "2": 30}, ["1", "2"], 10, {"1": 63, "2": 27, NEW_DEPLOYMENT: 10}),
        ({"1": 100}, ["1", "2"], 100, {NEW_DEPLOYMENT: 100}),
        ({"1": 100}, ["1"], 0, {"1": 100}),  # deployed, warm, no traffic yet
        ({}, ["1"], 10, {NEW_DEPLOYMENT: 100}),  # nothing serves now
    ],
)
def test_a_new_deployment_takes_its_percent_and_the_rest_keeps_its_proportions(
    current: dict, deployed: list, percent: int, expected: dict
) -> None:
    assert split_with_new(current, deployed, percent) == expected


@pytest.mark.parametrize(
    ("current", "deployed", "removed", "expected"),
    [
        ({"1": 90, "2": 10}, ["1", "2"], "2", {"1": 100}),  # canary rolled back
        ({"1": 45, "2": 45, "3": 10}, ["1", "2", "3"], "3", {"1": 50, "2": 50}),  # A/B restored
        ({"2": 100}, ["1", "2"], "2", {"1": 100}),  # blue/green: back to the one before
        ({"2": 90, "3": 10}, ["1", "2", "3"], "3", {"2": 100}),
        ({"1": 100}, ["1"], "1", {}),
    ],
)
def test_removing_a_deployment_gives_its_share_back(
    current: dict, deployed: list, removed: str, expected: dict
) -> None:
    assert split_without(current, deployed, removed) == expected


def test_setting_some_shares_spreads_the_rest_over_the_others() -> None:
    assert split_with({"1": 90, "2": 10}, ["1", "2"], {"2": 50}) == {"2": 50, "1": 50}
    assert split_with({"1": 60, "2": 30, "3": 10}, ["1", "2", "3"], {"3": 100}) == {"3": 100}
    assert split_with({"1": 100}, ["1", "2", "3"], {"2": 20, "3": 20}) == {
        "1": 60,
        "2": 20,
        "3": 20,
    }
    for assigned, why in (
        ({"9": 10}, "not deployed"),
        ({"1": 80, "2": 30}, "add up to 110"),
        ({"2": 50}, "no other deployment serves"),
        ({"1": 50, "2": 20}, "every deployment is named"),
    ):
        current = {"1": 100} if "serves" not in why else {"2": 100}
        with pytest.raises(PermanentError, match=why) as info:
            split_with(current, ["1", "2"], assigned)
        assert info.value.code == "bad_traffic"


# ---- against the emulator ----------------------------------------------------------------------
@pytest.fixture
def registry(emulator_url: str, admin: AdminClient) -> EndpointRegistry:
    made = make_endpoint_registry(make_settings(project=PROJECT, vertex_emulator_host=emulator_url))
    return EndpointRegistry(
        made._client,
        made._endpoints,
        project=PROJECT,
        location="us-central1",
        retry=DEFAULT_RETRY.with_delay(initial=0.001, maximum=0.01),
        rpc_timeout=10,
        poll_initial=0.01,
    )


def _versions(registry: EndpointRegistry, name: str, count: int, start: int = 0) -> list[str]:
    names = []
    for i in range(start, start + count):
        request = VersionRequest(
            display_name=name,
            artifact_uri=f"gs://bkt/registered/{name}/{i}/",
            serving_image=IMAGE,
            description=f"v{i + 1}",
            labels={UPLOAD_KEY_LABEL: f"{name}-{i}"},
        )
        names.append(registry.ensure_version(request).version_name)
    return names


def test_deploy_creates_the_endpoint_and_pins_the_exact_version(
    registry: EndpointRegistry,
) -> None:
    [v1, v2] = _versions(registry, "churn", 2)
    assert registry.find_endpoint("churn-prod") is None
    endpoint, created = registry.ensure_endpoint("churn-prod")
    assert created and endpoint.name.endswith("/endpoints/churn-prod")
    assert endpoint.labels == {"managed-by": "gcs-model-registrar"}
    assert registry.ensure_endpoint("churn-prod") == (registry.get_endpoint("churn-prod"), False)

    first = registry.wait(
        registry.deploy(
            endpoint.name, v1, traffic_split={NEW_DEPLOYMENT: 100}, display_name="churn v1"
        ),
        timeout=10,
    )
    assert first.state == "succeeded" and first.kind == "DeployModel"
    registry.merge_version_aliases(v1, add=["default"])  # moving an alias moves no deployment
    now = registry.get_endpoint("churn-prod")
    split = split_with_new(now.traffic, [d.id for d in now.deployed], 10)
    registry.wait(
        registry.deploy(endpoint.name, v2, traffic_split=split, display_name="churn v2"),
        timeout=10,
    )
    served = registry.get_endpoint("churn-prod")
    assert [d.version_name for d in served.deployed] == [v1, v2]
    old, new = served.deployed
    assert served.traffic == {old.id: 90, new.id: 10}
    assert new.machine_type == "n1-standard-2" and new.min_replicas == 1

    with pytest.raises(PermanentError, match="one exact version") as info:
        registry.deploy(endpoint.name, v1.split("@")[0] + "@default", traffic_split={},
                        display_name="x")  # fmt: skip
    assert info.value.code == "bad_version"


def test_traffic_updates_and_undeploy_with_a_split(registry: EndpointRegistry) -> None:
    [v1, v2] = _versions(registry, "ranker", 2)
    endpoint, _ = registry.ensure_endpoint("ranker-ep")
    for version, split in ((v1, {NEW_DEPLOYMENT: 100}), (v2, {NEW_DEPLOYMENT: 100})):
        registry.wait(
            registry.deploy(endpoint.name, version, traffic_split=split, display_name="r"),
            timeout=10,
        )
    served = registry.get_endpoint(endpoint.name)
    old, new = served.deployed
    assert served.traffic == {new.id: 100}
    ids = [d.id for d in served.deployed]
    updated = registry.set_traffic(
        endpoint.name, lambda e: split_with(e.traffic, ids, {old.id: 30})
    )
    assert updated.traffic == {old.id: 30, new.id: 70}
    after = split_without(updated.traffic, ids, new.id)
    registry.wait(registry.undeploy(endpoint.name, new.id, traffic_split=after), timeout=10)
    final = registry.get_endpoint(endpoint.name)
    assert [d.id for d in final.deployed] == [old.id] and final.traffic == {old.id: 100}


def test_endpoint_references_by_id_name_and_display_name(registry: EndpointRegistry) -> None:
    registry.wait(registry.create_endpoint("Churn Serving"), timeout=10)  # not an id: server's id
    [found] = registry.list_endpoints("Churn Serving")
    assert found.endpoint_id.isdigit()
    assert registry.find_endpoint("Churn Serving") == found
    assert registry.find_endpoint(found.name) == found
    assert registry.find_endpoint(found.endpoint_id) == found
    registry.wait(registry.create_endpoint("Churn Serving"), timeout=10)
    with pytest.raises(PermanentError, match="2 endpoints are named") as info:
        registry.find_endpoint("Churn Serving")
    assert info.value.code == "ambiguous_endpoint"
    with pytest.raises(ModelNotFound, match="creates it"):
        registry.require_endpoint("nope")


def test_a_slow_operation_reports_progress_and_can_be_left_running(
    registry: EndpointRegistry, admin: AdminClient
) -> None:
    [v1] = _versions(registry, "slow", 1)
    endpoint, _ = registry.ensure_endpoint("slow-ep")
    admin.config(operation_polls=3)
    seen: list[str] = []
    started = registry.deploy(endpoint.name, v1, traffic_split={NEW_DEPLOYMENT: 100},
                              display_name="s")  # fmt: skip
    left = registry.wait(started, timeout=0, on_progress=lambda op: seen.append(op.state))
    assert not left.done and left.state == "running" and seen == ["running"]
    assert registry.operation_state(left.name).done is False
    finished = registry.wait(left, timeout=10, on_progress=lambda op: seen.append(op.state))
    assert finished.state == "succeeded" and len(seen) >= 2
    looked = registry.operation_state(finished.name)
    assert looked.done and looked.error is None and looked.kind == "DeployModel"
    admin.config(operation_polls=0)


def test_serving_image_of_a_version(registry: EndpointRegistry) -> None:
    [v1] = _versions(registry, "imaged", 1)
    assert registry.serving_image(v1) == IMAGE
