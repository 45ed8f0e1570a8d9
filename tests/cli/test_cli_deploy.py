"""deploy / traffic / undeploy / rollback --endpoint / operation, through the CLI, on the emulators.

Versions are registered once per module by `registrar backfill` (the function's own pipeline);
each test uses its own endpoint, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
import requests

from handlers.cli.app import main
from tests.conftest import Bucket, Models, Services, Vertex, function_env


@dataclass(frozen=True)
class Registered:
    bucket: Bucket
    vertex: Vertex


PREBUILT_2_15 = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


@pytest.fixture(scope="module")
def registered(services: Services, models: Models) -> Registered:
    vertex = Vertex(services.vertex_url)
    vertex.reset()
    bucket = Bucket(services.storage_url, "cli-deploy")
    for i, local in enumerate((models.keras_a, models.keras_b, models.keras_a, models.keras_b)):
        bucket.upload(local, f"models/churn/v{i + 1}/model.keras")
    bucket.upload(models.keras_b, "models/tampered/v1/model.keras")
    bucket.upload(models.keras_a, "models/fraud/v1/model.keras")
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        for key, value in function_env(services).items():
            patch.setenv(key, value)
        code = main(["backfill", f"gs://{bucket.name}/models/", "--json"])
        assert code == 0, sys.stdout.getvalue()
        # one model registered with Vertex's prebuilt 2.15 image, for the end-of-availability rule
        patch.setenv("SERVING_CONTAINER_IMAGE_URI", PREBUILT_2_15)
        bucket.upload(models.keras_a, "models/legacy/v1/model.keras")
        code = main(["backfill", f"gs://{bucket.name}/models/legacy/", "--json"])
        assert code == 0, sys.stdout.getvalue()
    assert len(vertex.all_versions()) == 7
    return Registered(bucket, vertex)


@pytest.fixture
def slow_operations(services: Services) -> Iterator[None]:
    """Every long operation answers `done: false` to its first 3 polls."""
    config = f"{services.vertex_url}/_emulator/config"
    requests.post(config, json={"operation_polls": 3}, timeout=5).raise_for_status()
    try:
        yield
    finally:
        requests.post(config, json={"operation_polls": 0}, timeout=5).raise_for_status()


def _flat(text: str) -> str:
    """Rich wraps long lines; compare words, not line breaks."""
    return " ".join(text.split())


def _split_by_version(doc: dict) -> dict[str, int]:
    return {
        d["version_name"].rsplit("/", 1)[-1]: d["traffic_percent"] for d in doc["deployed_models"]
    }


def test_deploy_canary_split_and_rollback_end_to_end(registrar, registered: Registered) -> None:
    first = registrar("deploy", "churn@1", "--endpoint", "churn-prod", "--json")
    assert first.code == 0, first.err
    doc = first.json
    assert doc["created_endpoint"] is True
    assert doc["endpoint"].endswith("/endpoints/churn-prod")
    assert doc["operation"]["state"] == "succeeded" and doc["operation"]["kind"] == "DeployModel"
    assert doc["checks"]["record_state"] == "registered"
    assert doc["checks"]["artifact_files_verified"] >= 3
    assert doc["checks"]["serving_image"]["eol"] is None  # TF Serving: no Vertex end date
    assert doc["checks"]["serving_image"]["image"].endswith("tensorflow/serving:2.20.0")
    assert _split_by_version(doc) == {"churn@1": 100}

    # the default alias (v4, the newest upload) as a 10% canary: pinned to v4, v1 keeps 90%
    canary = registrar("deploy", "churn@default", "--endpoint", "churn-prod", "--traffic", "10")
    assert canary.code == 0, canary.err
    assert "checks passed for churn@4" in _flat(canary.out)
    assert "10% to the new deployment, 90% to churn@1" in _flat(canary.out)
    assert "DeployModel succeeded" in _flat(canary.out)
    rows = [line for line in canary.out.splitlines() if "churn@" in line and "%" in line]
    assert any("churn@1" in r and "90%" in r for r in rows)
    assert any("churn@4" in r and "10%" in r and "(new)" in r for r in rows)

    # A/B: a third deployment takes 20%, the other two keep their 9:1 proportion of the rest
    ab = registrar("deploy", "churn@2", "--endpoint", "churn-prod", "--traffic", "20", "--json")
    assert _split_by_version(ab.json) == {"churn@1": 72, "churn@4": 8, "churn@2": 20}

    shown = registrar("traffic", "churn-prod", "--json")
    assert shown.code == 0 and _split_by_version(shown.json) == _split_by_version(ab.json)
    ids = {d["version_name"].rsplit("@", 1)[1]: d["id"] for d in shown.json["deployed_models"]}

    # set: v4 by NAME@VERSION, v2 by deployed-model id; v1 takes the rest
    moved = registrar("traffic", "churn-prod", "churn@4=50", f"{ids['2']}=25", "--json")
    assert moved.code == 0, moved.err
    assert _split_by_version(moved.json) == {"churn@1": 25, "churn@4": 50, "churn@2": 25}
    assert sum(moved.json["traffic_before"].values()) == 100

    # roll back: the newest deployment (v2) goes, its 25% back to the others in proportion
    back = registrar("rollback", "--endpoint", "churn-prod", "--json")
    assert back.code == 0, back.err
    assert back.json["undeployed"]["version_id"] == "2"
    assert back.json["operation"]["kind"] == "UndeployModel"
    assert _split_by_version(back.json) == {"churn@1": 33, "churn@4": 67}
    again = registrar("rollback", "--endpoint", "churn-prod")
    assert again.code == 0, again.err
    assert "now serving churn@1" in _flat(again.out)
    final = registrar("traffic", "churn-prod", "--json").json
    assert _split_by_version(final) == {"churn@1": 100}
    nothing = registrar("rollback", "--endpoint", "churn-prod")
    assert nothing.code == 3 and "nothing to roll back to" in _flat(nothing.err)

    # the alias rollback is still `rollback NAME`; both at once is a usage error
    assert registrar("rollback", "churn", "--endpoint", "churn-prod").code == 2
    assert registrar("rollback").code == 2


def test_deploy_refuses_an_endpoint_serving_another_model_unless_overridden(
    registrar, registered: Registered
) -> None:
    assert registrar("deploy", "churn@1", "--endpoint", "mixed-ep").code == 0
    refused = registrar("deploy", "fraud@1", "--endpoint", "mixed-ep")
    assert refused.code == 1, refused.err
    assert "--allow-other-model" in _flat(refused.err) and "churn" in _flat(refused.err)
    shown = registrar("traffic", "mixed-ep", "--json").json
    assert [d["version_id"] for d in shown["deployed_models"]] == ["1"]  # nothing was started
    forced = registrar("deploy", "fraud@1", "--endpoint", "mixed-ep", "--traffic", "10",
                       "--allow-other-model", "--json")  # fmt: skip
    assert forced.code == 0, forced.err
    assert len(forced.json["deployed_models"]) == 2


def test_undeploy_gives_traffic_back_and_keeps_the_last_deployment_unless_forced(
    registrar, registered: Registered
) -> None:
    for ref, percent in (("churn@1", "100"), ("churn@3", "30")):
        run = registrar("deploy", ref, "--endpoint", "undeploy-ep", "--traffic", percent)
        assert run.code == 0, run.err
    gone = registrar("undeploy", "churn@1", "--endpoint", "undeploy-ep", "--json")
    assert gone.code == 0, gone.err
    assert gone.json["undeployed"]["version_id"] == "1"
    assert _split_by_version(gone.json) == {"churn@3": 100}
    last = registrar("undeploy", "churn@3", "--endpoint", "undeploy-ep")
    assert last.code == 1 and "--force" in _flat(last.err)
    forced = registrar("undeploy", "churn@3", "--endpoint", "undeploy-ep", "--force", "--json")
    assert forced.code == 0, forced.err
    assert forced.json["deployed_models"] == [] and forced.json["traffic_split"] == {}
    missing = registrar("undeploy", "churn@3", "--endpoint", "undeploy-ep")
    assert missing.code == 3 and "not deployed" in _flat(missing.err)
    assert registrar("traffic", "no-such-endpoint").code == 3


def test_no_wait_leaves_the_operation_running_and_operation_waits_for_it(
    registrar, registered: Registered, slow_operations: None
) -> None:
    started = registrar("deploy", "churn@2", "--endpoint", "nowait-ep", "--no-wait", "--json")
    assert started.code == 0, started.err
    operation = started.json["operation"]
    assert operation["state"] == "running" and operation["done"] is False
    name = operation["name"]
    assert "/endpoints/nowait-ep/operations/" in name
    looked = registrar("operation", name, "--json")
    assert looked.code == 0 and looked.json["state"] in ("running", "succeeded")
    waited = registrar("operation", name, "--wait")
    assert waited.code == 0, waited.err
    assert "succeeded" in _flat(waited.out) and "DeployModel" in _flat(waited.out)
    assert _split_by_version(registrar("traffic", "nowait-ep", "--json").json) == {"churn@2": 100}
    # waiting with a zero timeout: a clear "still running" and exit 4
    short = registrar("deploy", "churn@3", "--endpoint", "nowait-ep", "--timeout", "0")
    assert short.code == 4, short.err
    assert "still running after 0 s" in _flat(short.out) and "registrar operation" in _flat(
        short.out
    )


def test_deploying_the_same_version_again_changes_nothing(
    registrar, registered: Registered
) -> None:
    assert registrar("deploy", "churn@1", "--endpoint", "same-ep").code == 0
    again = registrar("deploy", "churn@1", "--endpoint", "same-ep", "--traffic", "10")
    assert again.code == 0 and "already deployed" in _flat(again.out)
    doc = registrar("traffic", "same-ep", "--json").json
    assert len(doc["deployed_models"]) == 1


def test_refused_when_the_artifact_fails_verify(registrar, registered: Registered) -> None:
    shown = registrar("show", "tampered@1", "--json").json
    artifact = shown["version"]["artifact_uri"]
    bucket = registered.bucket
    path = artifact.split("/", 3)[3] + "1/saved_model.pb"  # TF Serving's numbered layout
    bucket.upload_bytes(b"not the validated graph", path)
    run = registrar("deploy", "tampered@1", "--endpoint", "refused-ep")
    assert run.code == 1
    assert "refusing to deploy" in _flat(run.err) and "modified saved_model.pb" in _flat(run.err)
    assert registrar("traffic", "refused-ep").code == 3  # nothing was created


def test_refused_when_the_serving_image_is_past_end_of_availability(
    registrar, registered: Registered, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import serving_images

    monkeypatch.setattr(serving_images, "today_utc", lambda: date(2027, 1, 15))
    run = registrar("deploy", "legacy@1", "--endpoint", "eol-ep")
    assert run.code == 1
    assert "end of availability on 2027-01-14" in _flat(run.err)
    assert "SERVING_CONTAINER_IMAGE_URI=us-central1-docker.pkg.dev/test-project/" in _flat(run.err)
    monkeypatch.setattr(serving_images, "today_utc", lambda: date(2026, 11, 14))
    quiet = registrar("deploy", "legacy@1", "--endpoint", "eol-ep-early")
    assert quiet.code == 0 and "days left" not in _flat(quiet.err)  # 61 days: no warning
    monkeypatch.setattr(serving_images, "today_utc", lambda: date(2026, 12, 1))
    warned = registrar("deploy", "legacy@1", "--endpoint", "eol-ep")
    assert warned.code == 0 and "44 days left" in _flat(warned.err)


def test_refused_when_the_version_has_no_registered_record(
    registrar, registered: Registered
) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1
    from google.cloud.aiplatform_v1 import types

    churn = registrar("show", "churn@1", "--json").json
    client = aiplatform_v1.ModelServiceClient(
        transport="rest",
        client_options={"api_endpoint": registered.vertex.url},
        credentials=AnonymousCredentials(),
    )
    model = types.Model(
        display_name="handmade",
        artifact_uri=churn["version"]["artifact_uri"],
        container_spec=types.ModelContainerSpec(image_uri="us-docker.pkg.dev/x/y/serving:1"),
    )
    request = types.UploadModelRequest(
        parent=registered.vertex.parent, model=model, model_id="handmade"
    )
    client.upload_model(request=request, timeout=10).result(timeout=10)
    run = registrar("deploy", "handmade@1", "--endpoint", "handmade-ep")
    assert run.code == 1 and "not registered by registrar" in _flat(run.err)
    # a record that says anything but `registered`
    record = churn["record_uri"].split("/", 3)[3]
    saved = registered.bucket.read_json(record)
    registered.bucket.upload_bytes(b'{"state": "claimed"}', record)
    try:
        run = registrar("deploy", "churn@1", "--endpoint", "handmade-ep")
        assert run.code == 1 and "'claimed', not 'registered'" in _flat(run.err)
    finally:
        import json

        registered.bucket.upload_bytes(json.dumps(saved).encode(), record)


def test_usage_errors(registrar, registered: Registered) -> None:
    assert registrar("deploy", "churn", "--endpoint", "x").code == 2  # no version
    assert registrar("deploy", "churn@1").code == 2  # no endpoint
    assert registrar("deploy", "churn@1", "--endpoint", "x", "--traffic", "120").code == 2
    assert registrar("deploy", "churn@9", "--endpoint", "x").code == 3
    assert registrar("deploy", "churn@1", "--endpoint", "usage-ep").code == 0
    bad = registrar("traffic", "usage-ep", "churn@1")
    assert bad.code == 2 and "DEPLOYMENT=PERCENT" in _flat(bad.err)
    too_much = registrar("traffic", "usage-ep", "churn@1=101")
    assert too_much.code == 2
    assert registrar("operation", "projects/p/locations/l/models/m/operations/1").code == 2
