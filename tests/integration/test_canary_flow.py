"""Canary deployments through the function over HTTP, with `DEPLOY_ENDPOINT=serving-{model}`, on an
emulator whose deployments take time: one model per endpoint, champion + newest canary, no
orphan after racing uploads, a foreign endpoint skipped, and the CLI's promote/abort."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from emulators.vertex import AdminClient
from tests.conftest import Bucket, Models, Services, Vertex, function_env

LANDS = 0.5  # seconds a deployment takes on the emulator here


@pytest.fixture(scope="module")
def canary_server(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "THREADS": "8",
        "DEPLOY_ENDPOINT": "serving-{model}",
        "DEPLOY_TRAFFIC": "10",
        "DEPLOY_WAIT_SECONDS": "30",
    }
    service = stack.start_function(env, log_dir=tmp_path_factory.mktemp("canary-flow"))
    yield service.url
    service.stop()


@pytest.fixture(params=["reject", "last_writer_wins"])
def slow_vertex(request: Any, vertex: Vertex) -> Vertex:
    AdminClient(vertex.url).config(deploy_seconds=LANDS, concurrent_mutations=request.param)
    return vertex


def _deliver(url: str, resource: dict[str, Any]) -> None:
    headers, body = binary_event(resource, f"{resource['name']}#{resource['generation']}")
    for attempt in range(1, 60):
        if requests.post(url, data=body, headers=headers, timeout=300).status_code < 300:
            return
        time.sleep(min(1.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError(f"{resource['name']} never acknowledged")


def _upload(url: str, bucket: Bucket, local: Path, name: str) -> dict[str, Any]:
    resource = bucket.upload(local, name)
    _deliver(url, resource)
    return bucket.record(resource)


def _settled(vertex: Vertex, endpoint: str) -> dict[str, Any]:
    """The endpoint once no operation runs on it any more."""
    for _ in range(100):
        ops = requests.get(
            f"{vertex.url}/ui/{endpoint}/operations", params={"filter": "done=false"}, timeout=5
        ).json()
        if not ops.get("operations"):
            break
        time.sleep(0.1)
    reply = requests.get(f"{vertex.url}/v1/{endpoint}", timeout=5)
    reply.raise_for_status()
    return reply.json()


def _split(endpoint: dict[str, Any]) -> dict[str, int]:
    """version id -> percent, every deployed model listed (0 when it has no traffic)."""
    versions = {d["id"]: d["modelVersionId"] for d in endpoint.get("deployedModels", [])}
    traffic = endpoint.get("trafficSplit", {})
    return {v: int(traffic.get(k, 0)) for k, v in versions.items()}


def test_two_models_never_share_an_endpoint(
    canary_server: str, bucket: Bucket, slow_vertex: Vertex, models: Models
) -> None:
    fraud = _upload(canary_server, bucket, models.keras_a, "models/fraud/v1/model.keras")
    churn = _upload(canary_server, bucket, models.keras_b, "models/churn/v1/model.keras")
    endpoints = {fraud["deployment"]["endpoint"], churn["deployment"]["endpoint"]}
    assert len(endpoints) == 2
    for record in (fraud, churn):
        note = record["deployment"]
        model_id = record["model"].rsplit("/", 1)[-1]
        assert note["state"] == "started" and note["endpoint"].endswith(f"serving-{model_id}")
        endpoint = _settled(slow_vertex, note["endpoint"])
        assert endpoint["labels"]["registrar-model"] == model_id
        assert {d["model"] for d in endpoint["deployedModels"]} == {record["model"]}


def test_three_promoted_versions_leave_champion_and_newest_canary(
    canary_server: str, bucket: Bucket, slow_vertex: Vertex, models: Models
) -> None:
    records = [
        _upload(canary_server, bucket, local, f"models/fraud/v{i}/model.keras")
        for i, local in ((1, models.keras_a), (2, models.keras_b), (3, models.keras_a))
    ]
    endpoint = records[0]["deployment"]["endpoint"]
    assert _split(_settled(slow_vertex, endpoint)) == {"1": 90, "3": 10}
    assert records[2]["deployment"]["replaces"]["version"].endswith("@2")
    second = bucket.record(bucket.resource("models/fraud/v2/model.keras"))
    assert second["deployment"]["state"] == "replaced"  # the step is on v2's own record


def test_racing_uploads_of_one_model_leave_no_orphan(
    canary_server: str, bucket: Bucket, slow_vertex: Vertex, models: Models
) -> None:
    first = _upload(canary_server, bucket, models.keras_a, "models/fraud/v1/model.keras")
    names = [f"models/fraud/v{i}/model.keras" for i in (2, 3, 4)]
    resources = [bucket.upload(models.keras_b, n) for n in names]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda r: _deliver(canary_server, r), resources))
    notes = [bucket.record(r)["deployment"] for r in resources]
    # each ended as the canary, was replaced by a newer one, or stood back for the newer default
    assert all(n["state"] in ("started", "replaced", "skipped", "deferred") for n in notes), notes
    final = _split(_settled(slow_vertex, first["deployment"]["endpoint"]))
    assert 0 not in final.values(), final  # nothing deployed without traffic
    assert final["1"] == 90 and len(final) == 2, final


def test_a_canary_on_an_endpoint_serving_another_model_is_skipped(
    services: Services,
    bucket: Bucket,
    slow_vertex: Vertex,
    models: Models,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "DEPLOY_ENDPOINT": "one-for-all",  # no {model}: the first model takes it
    }
    service = stack.start_function(env, log_dir=tmp_path_factory.mktemp("one-endpoint"))
    try:
        fraud = _upload(service.url, bucket, models.keras_a, "models/fraud/v1/model.keras")
        churn = _upload(service.url, bucket, models.keras_b, "models/churn/v1/model.keras")
    finally:
        service.stop()
    assert fraud["deployment"]["state"] == "started"
    assert churn["deployment"]["state"] == "skipped"
    assert "registrar-model=" in churn["deployment"]["reason"]
    assert churn["state"] == "registered"  # the version is registered all the same
    endpoint = _settled(slow_vertex, fraud["deployment"]["endpoint"])
    assert {d["model"] for d in endpoint["deployedModels"]} == {fraud["model"]}


def test_cli_promotes_and_aborts_a_canary(
    canary_server: str,
    bucket: Bucket,
    slow_vertex: Vertex,
    models: Models,
    registrar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEPLOY_ENDPOINT", "serving-{model}")  # as the function has it
    for i, local in ((1, models.keras_a), (2, models.keras_b)):
        last = _upload(canary_server, bucket, local, f"models/fraud/v{i}/model.keras")
    endpoint = last["deployment"]["endpoint"]
    assert _split(_settled(slow_vertex, endpoint)) == {"1": 90, "2": 10}
    code, status = registrar("canary", "status", "fraud")
    assert code == 0 and status["canary"]["version"].endswith("@2")
    code, listed = registrar("versions", "fraud")
    by_id = {v["version_id"]: v["deployment"] for v in listed["versions"]}
    assert by_id["1"] == "champion started" and by_id["2"] == "canary started", by_id
    code, promoted = registrar("canary", "promote", "fraud")
    assert code == 0 and promoted["state"] == "promoted", promoted
    assert _split(_settled(slow_vertex, endpoint)) == {"2": 100}
    record = bucket.record(bucket.resource("models/fraud/v2/model.keras"))
    assert record["deployment"]["state"] == "promoted"
    code, shown = registrar("status", f"gs://{bucket.name}/models/fraud/v2/model.keras")
    assert code == 0 and shown["latest"]["deployment"].startswith("canary promoted"), shown
    _upload(canary_server, bucket, models.keras_a, "models/fraud/v3/model.keras")
    assert _split(_settled(slow_vertex, endpoint)) == {"2": 90, "3": 10}
    code, aborted = registrar("canary", "abort", "fraud")
    assert code == 0 and aborted["undeployed"].endswith("@3")
    assert _split(_settled(slow_vertex, endpoint)) == {"2": 100}
    record = bucket.record(bucket.resource("models/fraud/v3/model.keras"))
    assert record["deployment"]["state"] == "aborted"
    code, _ = registrar("canary", "abort", "fraud")
    assert code != 0  # nothing left to abort
