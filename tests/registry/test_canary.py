"""The canary lifecycle (handlers/registry/canary.py) on the emulators: the model's ledger lease in
fake-gcs-server, endpoints in the Vertex emulator with deployments that take time, both of the
emulator's modes for a second mutation of a busy endpoint."""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

import pytest

from emulators.vertex import AdminClient
from handlers.errors import PermanentError
from handlers.gcs.objects import ObjectStore
from handlers.registry.canary import Canaries, endpoint_ref, foreign_reason, roles
from handlers.registry.deploy import canaries, start_canary
from handlers.registry.endpoints import MODEL_LABEL, EndpointRegistry, make_endpoint_registry
from handlers.registry.interface import UPLOAD_KEY_LABEL, VersionRequest
from handlers.settings import Settings
from tests.conftest import Bucket, Vertex, function_env

IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
MODES = ("reject", "last_writer_wins")


class World:
    def __init__(self, services: Any, bucket: Bucket, **env: str) -> None:
        self.settings = Settings.from_env(function_env(services, **env))
        self.endpoints: EndpointRegistry = make_endpoint_registry(self.settings)
        self.store = ObjectStore(self.settings)
        self.bucket = bucket
        self.admin = AdminClient(services.vertex_url)
        self.counter = 0

    def version(self, name: str) -> tuple[str, str]:
        self.counter += 1
        path = f"registered/{name}/{self.counter}/"
        self.bucket.upload_bytes(b"x", path + "saved_model.pb")
        found = self.endpoints.ensure_version(
            VersionRequest(
                display_name=name,
                artifact_uri=f"gs://{self.bucket.name}/{path}",
                serving_image=IMAGE,
                description=f"v{self.counter}",
                labels={UPLOAD_KEY_LABEL: f"{name}-{self.counter}"},
            )
        )
        return found.model, found.version_id

    def lifecycle(self) -> Canaries:
        return canaries(self.settings, self.store, self.bucket.name, registry=self.endpoints)

    def start(self, model: str, version_id: str, name: str, **kw: Any) -> dict[str, Any]:
        note = start_canary(self.settings, self.store, bucket=self.bucket.name, model=model,
                            version_id=version_id, display_name=name, serving_image=IMAGE,
                            registry=self.endpoints, **kw)  # fmt: skip
        assert note is not None
        return note

    def deployed(self, endpoint: str) -> dict[str, int]:
        """version id -> traffic percent, once nothing runs on the endpoint any more."""
        info = self.endpoints.require_endpoint(endpoint)
        lifecycle = self.lifecycle()
        lifecycle.wait_idle(info.name, lifecycle.clock() + 20)
        info = self.endpoints.get_endpoint(info.name)
        return {d.version_id: info.share(d.id) for d in info.deployed}


@pytest.fixture(params=MODES)
def world(request: Any, services: Any, bucket: Bucket, vertex: Vertex) -> World:
    made = World(services, bucket, DEPLOY_ENDPOINT="serving-{model}", DEPLOY_TRAFFIC="10",
                 DEPLOY_WAIT_SECONDS="20")  # fmt: skip
    made.admin.config(deploy_seconds=0.4, concurrent_mutations=request.param)
    return made


def test_the_template_gives_each_model_its_own_labelled_endpoint(world: World) -> None:
    a_model, a1 = world.version("fraud")
    b_model, b1 = world.version("churn")
    a = world.start(a_model, a1, "fraud")
    b = world.start(b_model, b1, "churn")
    assert a["state"] == b["state"] == "started" and a["landed"] and b["landed"]
    a_id, b_id = a_model.rsplit("/", 1)[1], b_model.rsplit("/", 1)[1]
    assert a["endpoint"].endswith(f"/endpoints/serving-{a_id}")
    assert b["endpoint"].endswith(f"/endpoints/serving-{b_id}")
    for model_id, note in ((a_id, a), (b_id, b)):
        info = world.endpoints.get_endpoint(note["endpoint"])
        assert info.labels[MODEL_LABEL] == model_id
        assert {d.model.rsplit("/", 1)[1] for d in info.deployed} == {model_id}


def test_three_promoted_versions_leave_the_champion_and_the_newest_canary(world: World) -> None:
    model, v1 = world.version("fraud")
    notes = [world.start(model, v1, "fraud")]
    for _ in range(2):
        _, version = world.version("fraud")
        notes.append(world.start(model, version, "fraud"))
    endpoint = notes[0]["endpoint"]
    assert [n["role"] for n in notes] == ["champion", "canary", "canary"]
    assert notes[2]["replaces"]["version"].endswith("@2")
    assert [r["version"].rsplit("@", 1)[1] for r in notes[2]["replaced"]] == ["2"]
    assert world.deployed(endpoint) == {"1": 90, "3": 10}


def test_a_canary_on_an_endpoint_serving_another_model_is_skipped(
    world: World, services: Any
) -> None:
    a_model, a1 = world.version("fraud")
    b_model, b1 = world.version("churn")
    shared = World(services, world.bucket, DEPLOY_ENDPOINT="shared-ep")
    first = shared.start(a_model, a1, "fraud")
    assert first["state"] == "started"
    second = shared.start(b_model, b1, "churn")
    assert second["state"] == "skipped"
    assert f"{MODEL_LABEL}={a_model.rsplit('/', 1)[1]}" in second["reason"]
    assert shared.deployed("shared-ep") == {a1: 100}


def test_racing_starts_for_one_model_leave_no_orphan(world: World) -> None:
    model, v1 = world.version("fraud")
    world.start(model, v1, "fraud")
    versions = [world.version("fraud")[1] for _ in range(3)]
    notes: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda v=v: notes.append(world.start(model, v, "fraud")))
        for v in versions
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    endpoint = notes[0]["endpoint"]
    final = world.deployed(endpoint)
    world.lifecycle().reconcile(model, endpoint)  # what a later decision would finish
    final = world.deployed(endpoint)
    assert 0 not in final.values(), final  # nothing deployed without traffic
    assert final[v1] == 90 and len(final) == 2, final
    # the canary, or stood back for a newer default, or waited out a running operation
    assert all(n["state"] in ("started", "skipped", "deferred") for n in notes), notes


def test_promote_and_abort_finish_a_canary(world: World) -> None:
    model, v1 = world.version("fraud")
    world.start(model, v1, "fraud")
    _, v2 = world.version("fraud")
    endpoint = world.start(model, v2, "fraud")["endpoint"]
    promoted = world.lifecycle().promote(model, endpoint)
    assert promoted["state"] == "promoted" and promoted["champion"].endswith(f"@{v2}")
    assert world.deployed(endpoint) == {v2: 100}
    _, v3 = world.version("fraud")
    world.start(model, v3, "fraud")
    assert world.deployed(endpoint) == {v2: 90, v3: 10}
    aborted = world.lifecycle().abort(model, endpoint)
    assert aborted["state"] == "aborted" and aborted["undeployed"].endswith(f"@{v3}")
    assert world.deployed(endpoint) == {v2: 100}
    with pytest.raises(PermanentError, match="no canary"):
        world.lifecycle().abort(model, endpoint)


def test_a_running_operation_defers_the_decision_instead_of_overwriting(
    services: Any, bucket: Bucket, vertex: Vertex
) -> None:
    world = World(services, bucket, DEPLOY_ENDPOINT="serving-{model}", DEPLOY_WAIT_SECONDS="0")
    world.admin.config(deploy_seconds=30)
    model, v1 = world.version("fraud")
    first = world.start(model, v1, "fraud")
    assert first["state"] == "started" and first["landed"] is False
    _, v2 = world.version("fraud")
    second = world.start(model, v2, "fraud")
    assert second["state"] == "deferred" and first["operation"] in second["reason"]
    assert second["finish_with"] == f"registrar canary start fraud@{v2}"


def test_canary_off_past_its_image_date_or_failing_never_raises(
    services: Any, bucket: Bucket, vertex: Vertex
) -> None:
    off = World(services, bucket)
    model, v1 = off.version("fraud")
    assert start_canary(off.settings, off.store, bucket=bucket.name, model=model, version_id=v1,
                        display_name="fraud", serving_image=IMAGE) is None  # fmt: skip
    on = World(services, bucket, DEPLOY_ENDPOINT="serving-{model}")
    late = on.start(model, v1, "fraud", today=date(2027, 2, 1))
    assert late["state"] == "skipped" and "2027-01-14" in late["reason"]
    on.admin.fault("DeployModel", 503, count=1)
    failed = on.start(model, v1, "fraud")
    assert failed["state"] == "failed" and failed["error"]["code"] == "vertex_unavailable"
    assert failed["retry_with"] == f"registrar canary start fraud@{v1}"


def test_roles_and_foreign_reason_are_read_from_the_endpoint() -> None:
    from handlers.registry.endpoints import DeployedModelInfo, EndpointInfo

    m = "projects/p/locations/l/models/fraud"
    d = [DeployedModelInfo(str(i), m, str(i), "x") for i in (1, 2, 3)]
    info = EndpointInfo("projects/p/locations/l/endpoints/e", "e", tuple(d), {"1": 90, "3": 10})
    found = roles(info, m)
    assert (found.champion, found.canary, found.orphans) == (d[0], d[2], (d[1],))
    assert foreign_reason(info, m) is None
    assert "serves model(s) fraud" in (foreign_reason(info, m.replace("fraud", "churn")) or "")
    assert endpoint_ref("serving-{model}", "fraud") == "serving-fraud"
