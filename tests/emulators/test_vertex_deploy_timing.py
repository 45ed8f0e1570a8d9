"""Deployments take time in the emulator, as on Vertex: DeployModel/UndeployModel answer a running
operation and the endpoint (its deployed models, its traffic split) changes only when it lands.
A second mutation while one runs is refused (`reject`) or runs too, the later landing one's split
winning (`last_writer_wins`): Vertex does not document which, so code is tested against both.
Driven through the real GAPIC EndpointServiceClient over REST."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.api_core import exceptions as api
from google.longrunning import operations_pb2

from emulators.vertex import AdminClient
from tests.emulators.helpers import PARENT, upload
from tests.emulators.test_vertex_endpoints import _create, _deployed, _endpoints_client

LANDS = 0.6  # seconds a deploy takes here


@pytest.fixture
def endpoints(base_url: str) -> Any:
    return _endpoints_client(base_url)


def _running(endpoints: Any, endpoint: str) -> list[str]:
    reply = endpoints.list_operations(
        request=operations_pb2.ListOperationsRequest(name=endpoint, filter="done=false")
    )
    return [op.name for op in reply.operations]


def _wait(op: Any) -> Any:
    return op.result(timeout=LANDS * 20)


def test_a_deploy_changes_the_endpoint_only_when_it_lands(
    admin: AdminClient, endpoints: Any, gapic: Any
) -> None:
    admin.config(deploy_seconds=LANDS)
    model = upload(gapic).model
    endpoint = _create(endpoints, "timed").name
    op = endpoints.deploy_model(
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
    )
    assert not op.done()  # a running operation, as Vertex answers
    before = endpoints.get_endpoint(name=endpoint)
    assert not before.deployed_models and not before.traffic_split
    assert _running(endpoints, endpoint) == [op.operation.name]
    deployed = _wait(op).deployed_model
    after = endpoints.get_endpoint(name=endpoint)
    assert [d.id for d in after.deployed_models] == [deployed.id]
    assert dict(after.traffic_split) == {deployed.id: 100}
    assert _running(endpoints, endpoint) == []


def test_a_version_being_deployed_cannot_be_deleted(
    admin: AdminClient, endpoints: Any, gapic: Any
) -> None:
    admin.config(deploy_seconds=30)
    first = upload(gapic).model
    second = upload(gapic, parent_model=first)
    endpoint = _create(endpoints, "busy").name
    endpoints.deploy_model(
        endpoint=endpoint,
        deployed_model=_deployed(f"{first}@{second.model_version_id}"),
        traffic_split={"0": 100},
    )
    with pytest.raises(api.BadRequest, match=r"deployed|DeployedModel"):
        gapic.delete_model_version(name=f"{first}@{second.model_version_id}").result(timeout=10)


def test_reject_mode_refuses_a_second_mutation_while_one_runs(
    admin: AdminClient, endpoints: Any, gapic: Any
) -> None:
    admin.config(deploy_seconds=LANDS, concurrent_mutations="reject")
    model = upload(gapic).model
    endpoint = _create(endpoints, "reject").name
    first = endpoints.deploy_model(
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
    )
    with pytest.raises(api.BadRequest) as refused:
        endpoints.deploy_model(
            endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
        )
    assert refused.value.response.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert first.operation.name in refused.value.message
    _wait(first)
    second = endpoints.deploy_model(  # once it landed, the next one starts
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
    )
    assert _wait(second).deployed_model.id


def test_last_writer_wins_mode_applies_each_split_when_it_lands(
    admin: AdminClient, endpoints: Any, gapic: Any
) -> None:
    admin.config(deploy_seconds=LANDS, concurrent_mutations="last_writer_wins")
    model = upload(gapic).model
    endpoint = _create(endpoints, "lww").name
    champion = _wait(
        endpoints.deploy_model(
            endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
        )
    ).deployed_model.id
    a = endpoints.deploy_model(
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={champion: 90, "0": 10}
    )
    time.sleep(LANDS / 3)
    b = endpoints.deploy_model(
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={champion: 80, "0": 20}
    )
    a_id = _wait(a).deployed_model.id
    b_id = _wait(b).deployed_model.id
    after = endpoints.get_endpoint(name=endpoint)
    # b landed last and overwrote a's split: a is deployed with no traffic (the orphan
    # the registrar must never leave behind)
    assert dict(after.traffic_split) == {champion: 80, b_id: 20}
    assert {d.id for d in after.deployed_models} == {champion, a_id, b_id}


def test_an_undeploy_lands_later_and_keeps_the_split_until_then(
    admin: AdminClient, endpoints: Any, gapic: Any
) -> None:
    model = upload(gapic).model
    endpoint = _create(endpoints, "undeploy").name
    ids = [
        endpoints.deploy_model(endpoint=endpoint, deployed_model=_deployed(model), traffic_split=s)
        .result(timeout=10)
        .deployed_model.id
        for s in ({"0": 100}, None)
    ]
    admin.config(deploy_seconds=LANDS)
    op = endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=ids[1])
    assert not op.done()
    assert len(endpoints.get_endpoint(name=endpoint).deployed_models) == 2
    _wait(op)
    assert [d.id for d in endpoints.get_endpoint(name=endpoint).deployed_models] == [ids[0]]


def test_list_operations_filter_is_checked(admin: AdminClient, endpoints: Any, gapic: Any) -> None:
    endpoint = _create(endpoints, "filters").name
    assert _running(endpoints, endpoint) == []
    with pytest.raises(api.BadRequest, match="done=true or done=false"):
        endpoints.list_operations(
            request=operations_pb2.ListOperationsRequest(name=endpoint, filter="kind=deploy")
        )
    assert PARENT in endpoint
