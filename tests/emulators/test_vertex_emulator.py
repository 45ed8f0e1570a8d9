"""The Vertex emulator driven through the real SDK (high-level `aiplatform` and the GAPIC client).

Every rule the emulator enforces is exercised with an input that breaks it; the expected
exception is the one the SDK raises for Vertex's HTTP status.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api

from emulators.vertex import AdminClient, start_in_thread
from tests.emulators.conftest import TODAY
from tests.emulators.helpers import IMAGE, LOCATION, PARENT, PROJECT
from tests.emulators.helpers import name as _name
from tests.emulators.helpers import upload as _upload

ROOT = Path(__file__).resolve().parents[2]


# ---- the high-level SDK ------------------------------------------------------------------------


def test_sdk_upload_creates_model_with_server_fields(aip: Any, admin: AdminClient) -> None:
    model = aip.Model.upload(
        display_name="churn",
        model_id="churn",
        artifact_uri="gs://models-bkt/churn/1/",
        serving_container_image_uri=IMAGE,
        labels={"team": "risk", "empty": ""},
        description="first",
        upload_request_timeout=10,
    )
    assert model.resource_name == _name("churn")
    assert model.version_id == "1"
    assert model.version_aliases == ["default"]
    assert model.labels == {"team": "risk", "empty": ""}
    gca = model.gca_resource
    assert gca.artifact_uri == "gs://models-bkt/churn/1/"
    assert gca.container_spec.image_uri == IMAGE
    assert gca.etag and gca.create_time and gca.update_time and gca.version_create_time
    assert not gca.deployed_models
    assert "GetOperation" not in admin.state()["calls"]  # done on the first reply: no polling


def test_sdk_versions_default_and_aliases(aip: Any) -> None:
    first = aip.Model.upload(
        display_name="churn",
        model_id="churn",
        artifact_uri="gs://models-bkt/churn/1/",
        serving_container_image_uri=IMAGE,
        version_aliases=["prod"],
    )
    second = aip.Model.upload(
        display_name="churn",
        parent_model=first.resource_name,
        artifact_uri="gs://models-bkt/churn/2/",
        serving_container_image_uri=IMAGE,
        is_default_version=False,
        version_aliases=["canary"],
    )
    assert (second.version_id, second.version_aliases) == ("2", ["canary"])
    assert aip.Model(first.resource_name).version_id == "1"  # default stayed on 1

    third = aip.Model.upload(
        display_name="churn",
        parent_model=first.resource_name,
        artifact_uri="gs://models-bkt/churn/3/",
        serving_container_image_uri=IMAGE,
        is_default_version=True,
        version_aliases=["prod"],  # moves from version 1
    )
    assert set(third.version_aliases) == {"default", "prod"}
    assert aip.Model(first.resource_name).version_id == "3"
    assert aip.Model(first.resource_name, version="prod").version_id == "3"
    assert aip.Model(first.resource_name, version="canary").version_id == "2"
    assert aip.Model(f"{first.resource_name}@1").version_aliases == []

    registry = aip.models.ModelRegistry(first.resource_name)
    versions = {v.version_id: v.version_aliases for v in registry.list_versions()}
    assert versions == {"1": [], "2": ["canary"], "3": ["default", "prod"]}
    defaults = [v for v, aliases in versions.items() if "default" in aliases]
    assert defaults == ["3"]


def test_sdk_alias_merge_moves_and_removes(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    aip.Model.upload(
        display_name="churn", parent_model=model.resource_name, serving_container_image_uri=IMAGE
    )  # is_default_version defaults to True in the SDK
    registry = aip.models.ModelRegistry(model.resource_name)
    registry.add_version_aliases(["golden", "blue"], version="1")
    registry.add_version_aliases(["golden"], version="2")  # moves
    registry.remove_version_aliases(["blue"], version="1")
    versions = {v.version_id: sorted(v.version_aliases) for v in registry.list_versions()}
    assert versions == {"1": [], "2": ["default", "golden"]}

    registry.add_version_aliases(["default"], version="1")  # the default moves too
    assert aip.Model(model.resource_name).version_id == "1"
    with pytest.raises(api.BadRequest, match="default"):
        registry.remove_version_aliases(["default"], version="1")
    with pytest.raises(api.BadRequest, match="alias"):
        registry.add_version_aliases(["Bad_Alias"], version="1")
    with pytest.raises(api.NotFound):
        aip.Model(model.resource_name, version="nope")


def test_sdk_delete_version(aip: Any) -> None:
    model = aip.Model.upload(
        display_name="churn", model_id="churn", serving_container_image_uri=IMAGE
    )
    registry = aip.models.ModelRegistry(model.resource_name)
    with pytest.raises(api.BadRequest, match="only version"):
        registry.delete_version("1")
    aip.Model.upload(
        display_name="churn",
        parent_model=model.resource_name,
        serving_container_image_uri=IMAGE,
        is_default_version=False,
    )
    registry.delete_version("2")
    assert [v.version_id for v in registry.list_versions()] == ["1"]
    with pytest.raises(api.NotFound):
        aip.Model(model.resource_name, version="2")
    # deleting the default version is allowed (test_vertex_deletion.py has the details)


def test_sdk_list_filters(aip: Any) -> None:
    for model_id, name, team in [("a1", "alpha", "x"), ("a2", "alpha", "y"), ("b1", "beta", "x")]:
        aip.Model.upload(
            display_name=name,
            model_id=model_id,
            serving_container_image_uri=IMAGE,
            labels={"team": team},
        )

    def ids(expression: str) -> list[str]:
        return sorted(m.name for m in aip.Model.list(filter=expression))

    assert ids('display_name="alpha"') == ["a1", "a2"]
    assert ids('displayName="beta"') == ["b1"]
    assert ids('labels.team="x"') == ["a1", "b1"]
    assert ids('display_name="alpha" AND labels.team="x"') == ["a1"]
    assert ids('display_name!="alpha"') == ["b1"]
    assert ids("labels.team:*") == ["a1", "a2", "b1"]
    assert ids("model=a2") == ["a2"]
    with pytest.raises(api.BadRequest):
        aip.Model.list(filter='color="red"')


def test_sdk_upload_waits_for_a_slow_operation(aip: Any, admin: AdminClient) -> None:
    admin.config(operation_polls=2)
    model = aip.Model.upload(
        display_name="slow", model_id="slow", serving_container_image_uri=IMAGE
    )
    assert model.version_id == "1"
    assert admin.state()["calls"]["GetOperation"] == 3  # two `done: false`, then done


# ---- rules, through the GAPIC client -----------------------------------------------------------


@pytest.mark.parametrize(
    "model_id", ["1abc", "-abc", "Abc", "a" * 64, "a.b", "a b", "ünï"], ids=repr
)
def test_bad_model_ids_are_refused(gapic: Any, model_id: str) -> None:
    with pytest.raises(api.BadRequest, match="model_id"):
        _upload(gapic, model_id=model_id)


@pytest.mark.parametrize("model_id", ["a", "_a", "a" * 63, "a-b_c9"])
def test_good_model_ids_are_accepted(gapic: Any, model_id: str) -> None:
    assert _upload(gapic, model_id=model_id).model == _name(model_id)


def test_model_id_is_unique(gapic: Any) -> None:
    _upload(gapic, model_id="churn")
    with pytest.raises(api.Conflict, match="already exists"):
        _upload(gapic, model_id="churn", display_name="another")


def test_auto_ids_are_numeric_and_distinct(gapic: Any) -> None:
    a, b = _upload(gapic), _upload(gapic)
    assert a.model != b.model
    assert a.model.rsplit("/", 1)[1].isdigit()


def test_unknown_parent_model_is_not_found(gapic: Any) -> None:
    with pytest.raises(api.NotFound):
        _upload(gapic, parent_model=_name("ghost"))


@pytest.mark.parametrize("display_name", ["", "x" * 129])
def test_display_name_is_required_and_bounded(gapic: Any, display_name: str) -> None:
    with pytest.raises(api.BadRequest, match="display_name"):
        _upload(gapic, display_name=display_name)
    assert _upload(gapic, display_name="x" * 128).model_version_id == "1"


@pytest.mark.parametrize(
    "labels",
    [
        {f"k{i}": "v" for i in range(65)},
        {"Team": "x"},
        {"1team": "x"},
        {"team": "X"},
        {"team": "v" * 64},
        {"k" * 64: "v"},
        {"team": "a/b"},
    ],
    ids=["65-labels", "upper-key", "digit-key", "upper-value", "long-value", "long-key", "slash"],
)
def test_bad_labels_are_refused(gapic: Any, labels: dict[str, str]) -> None:
    with pytest.raises(api.BadRequest, match="label"):
        _upload(gapic, labels=labels)


def test_valid_labels_are_kept(gapic: Any) -> None:
    labels = {f"k{i}": "" for i in range(63)} | {"a_-9": "v_-0" + "x" * 59}
    result = _upload(gapic, labels=labels)
    assert dict(gapic.get_model(name=result.model).labels) == labels


@pytest.mark.parametrize("alias", ["1abc", "a", "abc-", "Abc", "a_b", "x" * 129, "-"], ids=repr)
def test_bad_aliases_are_refused(gapic: Any, alias: str) -> None:
    with pytest.raises(api.BadRequest, match="alias"):
        _upload(gapic, version_aliases=[alias])


def test_good_aliases_are_accepted(gapic: Any) -> None:
    aliases = ["a1", "aB-c9", "x" * 128]
    result = _upload(gapic, version_aliases=aliases)
    got = gapic.get_model(name=f"{result.model}@{aliases[1]}")
    assert list(got.version_aliases) == ["default", *aliases]


@pytest.mark.parametrize(
    "uri",
    [
        "/local/dir/",
        "https://storage.googleapis.com/b/d/",
        "gs://models-bkt/churn/model.keras",
        "gs://B/dir/",
        "gs://ab/dir/",
    ],
)
def test_artifact_uri_must_be_a_gcs_directory(gapic: Any, uri: str) -> None:
    with pytest.raises(api.BadRequest, match="artifact_uri"):
        _upload(gapic, artifact_uri=uri)


def test_container_image_is_required(gapic: Any) -> None:
    with pytest.raises(api.BadRequest, match="image_uri"):
        _upload(gapic, container_spec=None)


def test_bad_location_and_unknown_fields_are_refused(base_url: str) -> None:
    body = {"model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}}}
    reply = requests.post(
        f"{base_url}/v1/projects/{PROJECT}/locations/moon/models:upload", json=body, timeout=5
    )
    assert reply.status_code == 400
    body["model"]["colour"] = "red"
    reply = requests.post(f"{base_url}/v1/{PARENT}/models:upload", json=body, timeout=5)
    assert reply.status_code == 400 and "colour" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    "location", ["moon", "global", "us-central9", "US-CENTRAL1", "europe-west5", "us"]
)
def test_locations_vertex_does_not_serve_are_refused_on_every_route(
    base_url: str, location: str
) -> None:
    where = f"projects/{PROJECT}/locations/{location}"
    body = {"model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}}}
    calls = [
        ("POST", f"{where}/models:upload", body),
        ("GET", f"{where}/models", None),
        ("GET", f"{where}/models/churn%401", None),
        ("GET", f"{where}/models/churn:listVersions", None),
        ("POST", f"{where}/models/churn%401:mergeVersionAliases", {"versionAliases": ["a1"]}),
        ("DELETE", f"{where}/models/churn%402:deleteVersion", None),
        ("DELETE", f"{where}/models/churn", None),
        ("GET", f"{where}/models/churn/operations/1", None),
    ]
    for method, path, payload in calls:
        reply = requests.request(method, f"{base_url}/v1/{path}", json=payload, timeout=5)
        error = reply.json()["error"]
        assert (reply.status_code, error["status"]) == (400, "INVALID_ARGUMENT"), (method, path)
        assert repr(location) in error["message"]


@pytest.mark.parametrize("location", ["europe-west4", "asia-northeast1", "me-west1", "us-east5"])
def test_real_regions_are_served(gapic: Any, location: str) -> None:
    from google.cloud.aiplatform_v1 import types

    parent = f"projects/{PROJECT}/locations/{location}"
    model = types.Model(display_name="x", container_spec={"image_uri": IMAGE})
    request = types.UploadModelRequest(parent=parent, model=model, model_id="churn")
    result = gapic.upload_model(request=request, timeout=10).result(timeout=10)
    assert result.model == f"{parent}/models/churn"
    assert gapic.get_model(name=result.model).version_id == "1"
    assert list(gapic.list_models(parent=PARENT)) == []  # another region's models are apart


def test_errors_use_googles_json_shape(base_url: str, gapic: Any) -> None:
    _upload(gapic, model_id="churn")
    body = {"modelId": "churn", "model": {"displayName": "x", "containerSpec": {"imageUri": IMAGE}}}
    reply = requests.post(f"{base_url}/v1/{PARENT}/models:upload", json=body, timeout=5)
    assert reply.status_code == 409
    error = reply.json()["error"]
    assert (
        error["code"] == 409 and error["status"] == "ALREADY_EXISTS" and "churn" in error["message"]
    )
    reply = requests.get(f"{base_url}/v1/{PARENT}/models/ghost%401", timeout=5)
    assert reply.status_code == 404 and reply.json()["error"]["status"] == "NOT_FOUND"


def test_get_model_resolves_versions_and_aliases(gapic: Any) -> None:
    first = _upload(gapic, model_id="churn", version_aliases=["prod"])
    _upload(gapic, parent_model=first.model, version_aliases=["default"])
    assert gapic.get_model(name=first.model).version_id == "2"
    assert gapic.get_model(name=f"{first.model}@1").version_id == "1"
    assert gapic.get_model(name=f"{first.model}@prod").version_id == "1"
    for missing in ("@3", "@staging"):
        with pytest.raises(api.NotFound):
            gapic.get_model(name=first.model + missing)
    with pytest.raises(api.NotFound):
        gapic.get_model(name=_name("ghost"))


def test_list_versions_filters_on_labels_and_pages(gapic: Any) -> None:
    first = _upload(gapic, model_id="churn", labels={"k": "v0"})
    for i in range(1, 5):
        _upload(gapic, parent_model=first.model, labels={"k": f"v{i}"})
    pager = gapic.list_model_versions(request={"name": first.model, "page_size": 2})
    assert [m.version_id for m in pager] == ["1", "2", "3", "4", "5"]
    assert (
        len(list(gapic.list_model_versions(request={"name": first.model, "page_size": 2}).pages))
        == 3
    )
    found = gapic.list_model_versions(request={"name": first.model, "filter": 'labels.k="v3"'})
    assert [m.version_id for m in found] == ["4"]
    with pytest.raises(api.BadRequest):
        list(gapic.list_model_versions(request={"name": first.model, "filter": "display_name=x"}))
    with pytest.raises(api.BadRequest):
        list(gapic.list_model_versions(request={"name": first.model, "page_token": "junk"}))


def test_list_models_pages_and_shows_default_versions(gapic: Any) -> None:
    for i in range(5):
        _upload(gapic, model_id=f"m{i}")
    _upload(gapic, parent_model=_name("m0"), version_aliases=["default"])
    models = list(gapic.list_models(request={"parent": PARENT, "page_size": 2}))
    assert [m.name.rsplit("/", 1)[1] for m in models] == [f"m{i}" for i in range(5)]
    assert models[0].version_id == "2"


def test_delete_model(gapic: Any) -> None:
    result = _upload(gapic, model_id="churn")
    gapic.delete_model(name=result.model, timeout=10).result(timeout=10)
    with pytest.raises(api.NotFound):
        gapic.get_model(name=result.model)


# ---- faults, concurrency, persistence, standalone ----------------------------------------------


def test_faults_fail_the_next_calls_then_clear(gapic: Any, admin: AdminClient) -> None:
    admin.fault("UploadModel", 503, count=2)
    for _ in range(2):
        with pytest.raises(api.ServiceUnavailable):
            _upload(gapic, model_id="churn")
    assert _upload(gapic, model_id="churn").model_version_id == "1"
    admin.fault("GetModel", 429)
    with pytest.raises(api.TooManyRequests):
        gapic.get_model(name=_name("churn"))
    assert gapic.get_model(name=_name("churn")).version_id == "1"


def test_fault_after_the_effect_looks_like_a_lost_response(gapic: Any, admin: AdminClient) -> None:
    admin.fault("UploadModel", 504, when="after")
    with pytest.raises(api.GatewayTimeout):
        _upload(gapic, model_id="churn")
    assert gapic.get_model(name=_name("churn")).version_id == "1"  # it did happen


def test_operation_polls_and_poll_faults(gapic: Any, admin: AdminClient) -> None:
    from google.cloud.aiplatform_v1 import types

    admin.config(operation_polls=2)
    admin.fault("GetOperation", 500)
    request = types.UploadModelRequest(
        parent=PARENT,
        model=types.Model(display_name="x", container_spec={"image_uri": IMAGE}),
        model_id="churn",
    )
    operation = gapic.upload_model(request=request, timeout=10)
    assert operation.operation.name.startswith(_name("churn") + "/operations/")
    with pytest.raises(api.InternalServerError):
        operation.done()
    assert not operation.done()
    admin.fault("GetOperation", 503)  # the operations client retries UNAVAILABLE itself
    assert not operation.done()
    assert admin.state()["calls"]["GetOperation"] == 4
    assert operation.done()
    assert operation.result().model == _name("churn")


def test_latency_is_injected_per_method(gapic: Any, admin: AdminClient) -> None:
    _upload(gapic, model_id="churn")
    admin.latency("GetModel", 300)
    started = time.monotonic()
    gapic.get_model(name=_name("churn"))
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    list(gapic.list_models(parent=PARENT))
    assert time.monotonic() - started < 0.3


def test_concurrent_versions_are_numbered_once_with_one_default(gapic: Any) -> None:
    first = _upload(gapic, model_id="churn")
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            _upload(gapic, parent_model=first.model, version_aliases=["default", f"v{i}", "hot"])
        except Exception as exc:  # noqa: BLE001 (collected, asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    versions = list(gapic.list_model_versions(name=first.model))
    assert sorted(int(v.version_id) for v in versions) == list(range(1, 18))
    assert sum("default" in v.version_aliases for v in versions) == 1
    assert sum("hot" in v.version_aliases for v in versions) == 1


def test_concurrent_creates_of_one_model_id_have_one_winner(gapic: Any) -> None:
    outcomes: list[str] = []

    def create() -> None:
        try:
            _upload(gapic, model_id="churn")
            outcomes.append("created")
        except api.Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict"] * 7 + ["created"]


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    state = tmp_path / "vertex.json"

    def client(url: str) -> Any:
        return aiplatform_v1.ModelServiceClient(
            transport="rest",
            client_options={"api_endpoint": url},
            credentials=AnonymousCredentials(),
        )

    server, url = start_in_thread(state_file=str(state), today=TODAY)
    try:
        first = _upload(client(url), model_id="churn", version_aliases=["prod"])
        _upload(client(url), parent_model=first.model)
    finally:
        server.shutdown()
        server.server_close()
    assert json.loads(state.read_text())["models"]
    server, url = start_in_thread(state_file=str(state), today=TODAY)
    try:
        again = client(url)
        assert again.get_model(name=f"{first.model}@prod").version_id == "1"
        assert _upload(again, parent_model=first.model).model_version_id == "3"
    finally:
        server.shutdown()
        server.server_close()


def test_runs_standalone_and_prints_a_ready_line(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "emulators.vertex", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "ready on http://127.0.0.1:" in line
        url = line.strip().rsplit(" ", 1)[1]
        reply = requests.get(f"{url}/v1/{PARENT}/models", timeout=5)
        assert reply.status_code == 200 and reply.json() == {"models": []}
        assert requests.get(f"{url}/v1/nonsense", timeout=5).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert LOCATION in PARENT
