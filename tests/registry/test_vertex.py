"""`VertexRegistry` against the Vertex emulator, through the real GAPIC REST client."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from emulators.vertex import AdminClient, start_in_thread
from handlers.errors import PermanentError, TransientError
from handlers.registry.interface import UPLOAD_KEY_LABEL, RegisteredVersion, VersionRequest
from handlers.registry.vertex import VertexRegistry, make_registry, model_id_for
from handlers.registry.vertex_errors import is_transient
from tests.conftest import EMULATOR_TODAY, Services, make_settings

PROJECT = "vertex-test"
LOCATION = "us-central1"
PARENT = f"projects/{PROJECT}/locations/{LOCATION}"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def client(emulator_url: str) -> Any:
    return make_registry(make_settings(project=PROJECT, vertex_emulator_host=emulator_url))._client


def fast_retry(seen: list[Exception], timeout: float = 0.5) -> Any:
    """DEFAULT_RETRY's rule with millisecond backoff and a short budget; `seen` gets every
    retryable failure (api_core's `on_error`: the last one, not retried, too)."""
    from google.api_core.retry import Retry

    return Retry(
        predicate=is_transient, initial=0.001, maximum=0.01, timeout=timeout, on_error=seen.append
    )


@pytest.fixture
def seen() -> list[Exception]:
    return []


@pytest.fixture
def registry(client: Any, admin: AdminClient, seen: list[Exception]) -> VertexRegistry:
    return VertexRegistry(
        client,
        project=PROJECT,
        location=LOCATION,
        retry=fast_retry(seen),
        rpc_timeout=10,
        operation_timeout=10,
        poll_initial=0.01,
    )


def _request(key: str, name: str = "Fraud Detector", **changes: Any) -> VersionRequest:
    request = VersionRequest(
        display_name=name,
        artifact_uri=f"gs://registry-bkt/registered/{key}/",
        serving_image=IMAGE,
        description=f"upload {key}",
        labels={UPLOAD_KEY_LABEL: key, "source": "test"},
    )
    return replace(request, **changes)


def _versions(registry: VertexRegistry, model: str) -> dict[str, tuple[str, ...]]:
    return {v.version_id: v.aliases for v in registry.list_versions(model)}


def _hand_made(client: Any, model_id: str, display_name: str) -> str:
    """A model someone created by hand (console, gcloud), not through the registrar."""
    from google.cloud.aiplatform_v1 import types

    model = types.Model(display_name=display_name, container_spec={"image_uri": IMAGE})
    request = types.UploadModelRequest(parent=PARENT, model=model, model_id=model_id)
    return client.upload_model(request=request).result(timeout=10).model


# ---- ensure_version ----------------------------------------------------------------------------


def test_first_upload_creates_the_model_under_a_deterministic_id(registry: VertexRegistry) -> None:
    result = registry.ensure_version(_request("k1", aliases=("canary",)))
    assert result == RegisteredVersion(
        f"{PARENT}/models/{model_id_for('Fraud Detector')}", "1", False, ("canary", "default")
    )
    info = registry.get_model(result.model)
    assert info.display_name == "Fraud Detector"
    assert info.artifact_uri == "gs://registry-bkt/registered/k1/"
    assert info.labels == {UPLOAD_KEY_LABEL: "k1", "source": "test"}
    assert info.description == "upload k1"
    assert info.is_default and info.create_time is not None


def test_second_upload_is_version_two_and_takes_the_default(registry: VertexRegistry) -> None:
    first = registry.ensure_version(_request("k1"))
    second = registry.ensure_version(_request("k2"))
    assert (second.model, second.version_id, second.reused) == (first.model, "2", False)
    assert _versions(registry, first.model) == {"1": (), "2": ("default",)}


def test_make_default_false_keeps_the_default_on_the_old_version(registry: VertexRegistry) -> None:
    first = registry.ensure_version(_request("k1"))
    second = registry.ensure_version(_request("k2", make_default=False, aliases=("candidate",)))
    assert second.aliases == ("candidate",)
    assert registry.get_model(first.model).version_id == "1"
    assert registry.get_model(first.model, "candidate").version_id == "2"


def test_first_version_is_default_even_when_not_asked(registry: VertexRegistry) -> None:
    first = registry.ensure_version(_request("k1", make_default=False))
    assert "default" in first.aliases
    assert registry.get_model(first.model).version_id == "1"


def test_same_upload_key_twice_is_one_version(registry: VertexRegistry, admin: AdminClient) -> None:
    first = registry.ensure_version(_request("k1"))
    again = registry.ensure_version(_request("k1"))
    assert (again.model, again.version_id, again.reused) == (first.model, "1", True)
    assert again.aliases == ("default",)
    assert list(_versions(registry, first.model)) == ["1"]
    assert admin.state()["calls"]["UploadModel"] == 1


def test_upload_key_filter_uses_the_documented_quoted_key_form(registry: VertexRegistry) -> None:
    from handlers.registry.vertex_types import filter_query

    assert filter_query([], {UPLOAD_KEY_LABEL: "k1"}) == {
        "filter": f'labels."{UPLOAD_KEY_LABEL}"="k1"'
    }
    registry.ensure_version(_request("k1"))
    assert registry.ensure_version(_request("k1")).reused  # the emulator accepts only this form


def test_a_version_inheriting_the_key_from_model_labels_is_not_reused(
    registry: VertexRegistry, client: Any, admin: AdminClient
) -> None:
    """Vertex merges model-level labels (the first upload's) into every version it returns."""
    from google.cloud.aiplatform_v1 import types

    first = registry.ensure_version(_request("k1"))
    # A version added by hand carries no upload key of its own, so it shows the model's: k1.
    hand = types.Model(
        display_name="Fraud Detector",
        artifact_uri="gs://registry-bkt/by-hand/",
        container_spec={"image_uri": IMAGE},
    )
    upload = types.UploadModelRequest(parent=PARENT, model=hand, parent_model=first.model)
    client.upload_model(request=upload).result(timeout=10)
    registry.delete_model_version(f"{first.model}@1")  # now only the hand-made one matches "k1"
    again = registry.ensure_version(_request("k1"))
    assert (again.reused, again.version_id) == (False, "3")
    assert registry.get_model(first.model, "3").artifact_uri == "gs://registry-bkt/registered/k1/"


def test_concurrent_first_uploads_make_one_model_with_two_versions(
    registry: VertexRegistry,
) -> None:
    barrier = threading.Barrier(2)
    results: list[RegisteredVersion] = []

    def register(key: str) -> None:
        barrier.wait()
        results.append(registry.ensure_version(_request(key)))

    threads = [threading.Thread(target=register, args=(k,)) for k in ("k1", "k2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0].model == results[1].model
    assert sorted(r.version_id for r in results) == ["1", "2"]
    assert len(registry.list_models("Fraud Detector")) == 1
    versions = _versions(registry, results[0].model)
    assert sum("default" in aliases for aliases in versions.values()) == 1


def test_existing_model_with_the_display_name_is_used(
    registry: VertexRegistry, client: Any
) -> None:
    hand_made = _hand_made(client, "legacy-fraud", "Fraud Detector")
    result = registry.ensure_version(_request("k1"))
    assert (result.model, result.version_id) == (hand_made, "2")


def test_two_models_with_the_display_name_are_ambiguous(
    registry: VertexRegistry, client: Any
) -> None:
    a = _hand_made(client, "fraud-a", "Fraud Detector")
    b = _hand_made(client, "fraud-b", "Fraud Detector")
    with pytest.raises(PermanentError) as caught:
        registry.ensure_version(_request("k1"))
    assert caught.value.code == "ambiguous_display_name"
    assert a in str(caught.value) and b in str(caught.value)


def test_derived_id_taken_by_another_name_is_refused(registry: VertexRegistry, client: Any) -> None:
    _hand_made(client, model_id_for("Fraud Detector"), "Something Else")
    with pytest.raises(PermanentError) as caught:
        registry.ensure_version(_request("k1"))
    assert caught.value.code == "model_id_taken"


def test_upload_503s_then_success_is_one_version(
    registry: VertexRegistry, admin: AdminClient, seen: list[Exception]
) -> None:
    admin.fault("UploadModel", 503, count=2)
    result = registry.ensure_version(_request("k1"))
    assert (result.version_id, result.reused) == ("1", False)
    assert [type(e).__name__ for e in seen] == ["UploadInterrupted"] * 2  # both retried
    assert admin.state()["calls"]["UploadModel"] == 3
    assert list(_versions(registry, result.model)) == ["1"]


def test_lost_upload_response_is_found_not_repeated(
    registry: VertexRegistry, admin: AdminClient
) -> None:
    registry.ensure_version(_request("k1"))
    admin.fault("UploadModel", 504, when="after")  # version 2 is made, the reply is lost
    result = registry.ensure_version(_request("k2"))
    assert (result.version_id, result.reused) == ("2", True)
    assert list(_versions(registry, result.model)) == ["1", "2"]
    assert admin.state()["calls"]["UploadModel"] == 2


def test_persistent_503_is_retried_until_the_budget_and_uploads_nothing(
    registry: VertexRegistry, admin: AdminClient, seen: list[Exception]
) -> None:
    admin.fault("UploadModel", 503, count=10_000)
    with pytest.raises(TransientError) as caught:
        registry.ensure_version(_request("k1"))
    assert caught.value.code == "vertex_unavailable"  # the last failure itself, not a RetryError
    calls = admin.state()["calls"]["UploadModel"]
    assert calls >= 2 and len(seen) == calls  # every failed upload was retried, bar the last
    assert registry.list_models() == []


def test_retries_never_outlast_the_runs_deadline(
    client: Any, admin: AdminClient, seen: list[Exception]
) -> None:
    registry = VertexRegistry(
        client, project=PROJECT, location=LOCATION, retry=fast_retry(seen, timeout=60)
    )
    admin.fault("GetModel", 503, count=10_000)
    with pytest.raises(TransientError):
        registry.ensure_version(_request("k1"), deadline=time.monotonic())  # no time left
    assert admin.state()["calls"]["GetModel"] == 1  # the 60 s budget was cut to the run's 0 s
    budget = registry._within(time.monotonic() + 5).timeout
    assert budget is not None and 0 < budget <= 5
    assert registry._within(None).timeout == 60


def test_read_faults_are_retried_per_call(registry: VertexRegistry, admin: AdminClient) -> None:
    admin.fault("GetModel", 429)
    admin.fault("ListModels", 500)
    assert registry.ensure_version(_request("k1")).version_id == "1"
    admin.fault("ListModelVersions", 502, count=10_000)  # outlasts the retry budget
    with pytest.raises(TransientError) as caught:
        registry.ensure_version(_request("k2"))
    assert caught.value.code == "vertex_unavailable"
    assert admin.state()["calls"]["ListModelVersions"] >= 2


def test_slow_operations_are_polled(registry: VertexRegistry, admin: AdminClient) -> None:
    admin.config(operation_polls=2)
    assert registry.ensure_version(_request("k1")).version_id == "1"
    assert admin.state()["calls"]["GetOperation"] == 3


def test_permission_denied_says_what_to_grant_and_is_redelivered(
    registry: VertexRegistry, admin: AdminClient
) -> None:
    from handlers.errors import PermissionDenied

    admin.fault("GetModel", 403)
    with pytest.raises(PermissionDenied, match=r"roles/aiplatform\.user") as caught:
        registry.ensure_version(_request("k1"))
    assert caught.value.code == "permission_denied"
    assert isinstance(caught.value, TransientError)  # 5xx: IAM grants take minutes to apply
    assert caught.value.permission == "aiplatform.models.get"
    assert admin.state()["calls"]["GetModel"] == 1  # no in-process retries of a 403


@pytest.mark.parametrize("alias", ["1st", "Prod", "a", "x_y", "default", "end-"])
def test_bad_alias_is_refused_before_any_call(
    registry: VertexRegistry, admin: AdminClient, alias: str
) -> None:
    with pytest.raises(PermanentError) as caught:
        registry.ensure_version(_request("k1", aliases=(alias,)))
    assert caught.value.code == "bad_alias"
    assert admin.state()["calls"] == {}


def test_missing_upload_key_is_refused(registry: VertexRegistry) -> None:
    with pytest.raises(PermanentError) as caught:
        registry.ensure_version(_request("k1", labels={"source": "test"}))
    assert caught.value.code == "missing_upload_key"


def test_invalid_label_is_a_permanent_vertex_rejection(registry: VertexRegistry) -> None:
    with pytest.raises(PermanentError, match="label") as caught:
        registry.ensure_version(_request("K1"))
    assert caught.value.code == "vertex_rejected"


def test_unreachable_endpoint_is_transient(seen: list[Exception]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    registry = make_registry(
        make_settings(project=PROJECT, vertex_emulator_host=f"http://127.0.0.1:{port}")
    )
    registry = VertexRegistry(
        registry._client, project=PROJECT, location=LOCATION, retry=fast_retry(seen, 0.2)
    )
    with pytest.raises(TransientError) as caught:
        registry.ensure_version(_request("k1"))
    assert caught.value.code == "vertex_unreachable" and len(seen) >= 2


# ---- primitives for the operator CLI -----------------------------------------------------------


def test_primitives_return_plain_dataclasses(registry: VertexRegistry) -> None:
    first = registry.ensure_version(_request("k1"))
    registry.ensure_version(_request("k2", make_default=False))
    merged = registry.merge_version_aliases(f"{first.model}@2", add=["prod", "blue"])
    assert set(merged.aliases) == {"prod", "blue"}
    merged = registry.merge_version_aliases(f"{first.model}@2", add=["default"], remove=["blue"])
    assert set(merged.aliases) == {"default", "prod"}
    assert registry.get_model(model_id_for("Fraud Detector"), "prod").version_id == "2"
    (listed,) = registry.list_models("Fraud Detector")
    assert (listed.version_id, listed.model) == ("2", first.model)
    assert [
        v.version_id for v in registry.list_versions(first.model, labels={"source": "test"})
    ] == [
        "1",
        "2",
    ]
    registry.delete_model_version(f"{first.model}@1")
    assert list(_versions(registry, first.model)) == ["2"]
    with pytest.raises(PermanentError, match=r"bad|alias"):
        registry.merge_version_aliases(f"{first.model}@2", add=["Bad"])
    with pytest.raises(PermanentError) as caught:
        registry.get_model(first.model, "9")
    assert caught.value.code == "not_found"


# ---- model ids and imports ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["fraud", "Fraud Detector", "9lives", "-x-", "_a", "ünïcode", "a" * 200, "a.b", "!!!"]
)
def test_model_ids_are_valid_and_deterministic(name: str) -> None:
    model_id = model_id_for(name)
    assert re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", model_id), model_id
    assert model_id_for(name) == model_id


def test_model_ids_do_not_collide() -> None:
    names = ["a b", "a-b", "A-B", "a_b", "a.b", "a" * 70, "a" * 71, "a" * 63 + "b"]
    ids = [model_id_for(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert model_id_for("fraud-v2") == "fraud-v2"  # valid names are kept as they are


def test_importing_the_module_does_not_import_the_sdk() -> None:
    code = (
        "import sys, handlers.registry.vertex; "
        "bad = [m for m in sys.modules if m.startswith('google.cloud.aiplatform')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ---- artifact check by the emulator, seen through the registrar --------------------------------


@pytest.fixture(scope="module")
def checked_client(services: Services) -> tuple[Any, AdminClient]:
    """A client of the session's emulator process, which checks artifact directories in the
    session's real fake-gcs-server."""
    from dev.stack import create_bucket

    create_bucket(services.storage_url, "registry-bkt")
    for name in ("registered/sm/saved_model.pb", "registered/keras/model.keras"):
        reply = requests.post(
            f"{services.storage_url}/upload/storage/v1/b/registry-bkt/o",
            params={"uploadType": "media", "name": name},
            data=b"x",
            timeout=5,
        )
        reply.raise_for_status()
    url = services.vertex_url
    return make_registry(
        make_settings(project=PROJECT, vertex_emulator_host=url)
    )._client, AdminClient(url)


def test_an_artifact_without_a_savedmodel_is_a_permanent_rejection(
    checked_client: tuple[Any, AdminClient], seen: list[Exception]
) -> None:
    client, admin = checked_client
    admin.reset()
    registry = VertexRegistry(
        client,
        project=PROJECT,
        location=LOCATION,
        retry=fast_retry(seen),
    )
    assert registry.ensure_version(_request("sm")).version_id == "1"
    with pytest.raises(PermanentError, match=r"saved_model\.pb") as caught:
        registry.ensure_version(_request("keras"))
    assert caught.value.code == "vertex_rejected" and seen == []  # permanent: not retried
    assert admin.state()["calls"]["UploadModel"] == 2


def test_storage_down_behind_vertex_is_transient(seen: list[Exception]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server, url = start_in_thread(
        port=0, storage_url=f"127.0.0.1:{port}", today=date.fromisoformat(EMULATOR_TODAY)
    )
    try:
        registry = VertexRegistry(
            make_registry(make_settings(project=PROJECT, vertex_emulator_host=url))._client,
            project=PROJECT,
            location=LOCATION,
            retry=fast_retry(seen, 0.2),
        )
        with pytest.raises(TransientError) as caught:
            registry.ensure_version(_request("sm"))
        assert caught.value.code == "vertex_unavailable"
        calls = AdminClient(url).state()["calls"]["UploadModel"]
        assert calls >= 2 and len(seen) == calls  # retried until the budget ran out
        assert registry.list_models() == []
    finally:
        server.shutdown()
        server.server_close()


# ---- the module's public surface and its retry policy ------------------------------------------


def test_moved_names_are_still_importable_from_handlers_vertex() -> None:
    import handlers.registry.vertex as vertex
    from handlers.registry import vertex_errors, vertex_types

    assert vertex.ModelNotFound is vertex_errors.ModelNotFound
    assert vertex.AlreadyExists is vertex_errors.AlreadyExists
    assert vertex.ModelVersionInfo is vertex_types.ModelVersionInfo
    assert vertex.ALIAS_PATTERN is vertex_types.ALIAS_PATTERN
    assert all(hasattr(vertex, name) for name in vertex.__all__)
    assert issubclass(vertex.ModelNotFound, PermanentError)


def test_one_default_retry_of_api_cores_type_bounded_in_time(client: Any) -> None:
    from google.api_core.retry import Retry

    import handlers.registry.vertex as vertex

    assert isinstance(vertex.DEFAULT_RETRY, Retry) and vertex.DEFAULT_RETRY is vertex.DEFAULT_RETRY
    assert vertex.DEFAULT_RETRY.timeout == vertex.RETRY_SECONDS
    made = VertexRegistry(client, project=PROJECT, location=LOCATION)
    assert made._retry is vertex.DEFAULT_RETRY


def test_waiting_on_upload_never_outlasts_the_run_and_never_uploads_twice(
    registry: VertexRegistry, admin: AdminClient
) -> None:
    import time

    from handlers.registry.vertex_errors import OperationPending

    admin.config(operation_polls=10_000)  # an UploadModel that keeps running
    started = time.monotonic()
    with pytest.raises(OperationPending, match="had not finished") as caught:
        registry.ensure_version(_request("k1"), deadline=time.monotonic() + 1.5)
    assert time.monotonic() - started < 10  # bounded by the deadline, not the 10 s op timeout
    assert isinstance(caught.value, TransientError)
    assert admin.state()["calls"]["UploadModel"] == 1  # no second upload: it could duplicate


@pytest.mark.parametrize("limit", [60, 300, 540])
def test_pipeline_deadline_is_well_inside_the_function_limit(limit: int) -> None:
    from handlers.pipeline import run_deadline
    from handlers.settings import Settings

    settings = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "my-project", "FUNCTION_TIMEOUT_SECONDS": str(limit),
         "VALIDATION_TIMEOUT_SECONDS": "30"}
    )  # fmt: skip
    deadline = run_deadline(settings, 100.0)
    assert 100.0 + limit / 2 < deadline <= 100.0 + limit - min(30, limit / 10)
