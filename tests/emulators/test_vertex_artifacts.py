"""UploadModel's artifact check against a real fake-gcs-server, through the GAPIC REST client.

Vertex refuses an artifact directory it cannot serve: an empty one, one without exactly one
`saved_model.pb`/`saved_model.pbtxt` at its top when the image is a prebuilt TensorFlow one, one in
a bucket outside the Vertex region, and more than 10 GB of artifacts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api

from dev.stack import (
    Service,
    create_bucket,
    fake_gcs_binary,
    free_port,
    wait_http,
)
from emulators.vertex import AdminClient, EmulatorServer, start_in_thread
from emulators.vertex.artifacts import PREBUILT_TF
from tests.emulators.conftest import TODAY
from tests.emulators.gcs_stub import StubGcs

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "emu-project"
PARENT = f"projects/{PROJECT}/locations/us-central1"
BUCKET = "artifact-bkt"
TF_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
CUSTOM_IMAGE = "europe-docker.pkg.dev/acme/serving/keras-server:1.4"
_MISSING_SAVED_MODEL = (
    r"expected to contain exactly one of: \[saved_model\.pb, saved_model\.pbtxt\]"
)


@pytest.fixture(scope="module")
def gcs(fake_gcs: Service) -> Service:
    """The session's fake-gcs-server with this module's bucket."""
    create_bucket(fake_gcs.url, BUCKET)
    _put(
        fake_gcs.url,
        "sm/saved_model.pb",
        "sm/fingerprint.pb",
        "sm/variables/variables.index",
        "sm/variables/variables.data-00000-of-00001",
        "text/saved_model.pbtxt",
        "keras/model.keras",
        "both/saved_model.pb",
        "both/saved_model.pbtxt",
        "nested/export/saved_model.pb",
        "marker/",
    )
    return fake_gcs


@pytest.fixture(scope="module")
def checking(gcs: Service) -> Iterator[tuple[EmulatorServer, str]]:
    server, url = start_in_thread(storage_url=gcs.url, today=TODAY)
    yield server, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def gapic(checking: tuple[EmulatorServer, str]) -> Any:
    AdminClient(checking[1]).reset()
    return _client(checking[1])


def _client(url: str) -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.ModelServiceClient(
        transport="rest", client_options={"api_endpoint": url}, credentials=AnonymousCredentials()
    )


def _put(storage_url: str, *names: str) -> None:
    for name in names:
        reply = requests.post(
            f"{storage_url}/upload/storage/v1/b/{BUCKET}/o",
            params={"uploadType": "media", "name": name},
            data=b"x",
            timeout=5,
        )
        reply.raise_for_status()


def _upload(gapic: Any, directory: str, image: str = TF_IMAGE, bucket: str = BUCKET) -> Any:
    from google.cloud.aiplatform_v1 import types

    model = types.Model(
        display_name="churn",
        artifact_uri=f"gs://{bucket}/{directory}",
        container_spec=types.ModelContainerSpec(image_uri=image),
    )
    request = types.UploadModelRequest(parent=PARENT, model=model)
    return gapic.upload_model(request=request, timeout=10).result(timeout=10)


@pytest.mark.parametrize("directory", ["sm/", "sm", "text/"])
def test_a_savedmodel_directory_is_accepted(gapic: Any, directory: str) -> None:
    result = _upload(gapic, directory)
    assert gapic.get_model(name=result.model).artifact_uri == f"gs://{BUCKET}/{directory}"


@pytest.mark.parametrize("directory", ["keras/", "both/", "nested/"])
def test_a_tf_image_needs_exactly_one_savedmodel_at_the_top(gapic: Any, directory: str) -> None:
    with pytest.raises(api.BadRequest, match=_MISSING_SAVED_MODEL) as caught:
        _upload(gapic, directory)
    assert f"Model directory gs://{BUCKET}/{directory} " in caught.value.message
    assert list(gapic.list_models(parent=PARENT)) == []  # nothing was created


@pytest.mark.parametrize(
    "image",
    [
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-15:latest",
        "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-14:latest",
        "asia-docker.pkg.dev/vertex-ai/prediction/tf-cpu.1-15:latest",
        "us-docker.pkg.dev/vertex-ai/prediction/tf-gpu.1-15:latest",
        "gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-1:latest",
    ],
)
def test_every_prebuilt_tensorflow_image_is_checked(gapic: Any, image: str) -> None:
    with pytest.raises(api.BadRequest, match=_MISSING_SAVED_MODEL):
        _upload(gapic, "keras/", image)
    assert _upload(gapic, "sm/", image).model_version_id == "1"


@pytest.mark.parametrize(
    "image",
    [
        CUSTOM_IMAGE,
        "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest",
        "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-1:latest",
        "us-docker.pkg.dev/acme/prediction/tf2-cpu.2-15:latest",  # not Google's prebuilt one
    ],
)
def test_other_images_only_need_files(gapic: Any, image: str) -> None:
    assert not PREBUILT_TF.fullmatch(image)
    assert _upload(gapic, "keras/", image).model_version_id == "1"
    with pytest.raises(api.BadRequest, match=r'no files under "gs://artifact-bkt/absent/"'):
        _upload(gapic, "absent/", image)


@pytest.mark.parametrize("directory", ["absent/", "marker/"])  # marker/: only a `dir/` object
def test_an_empty_or_missing_directory_is_refused(gapic: Any, directory: str) -> None:
    with pytest.raises(api.BadRequest, match="There are no files under"):
        _upload(gapic, directory, CUSTOM_IMAGE)


def test_a_directory_with_only_subdirectories_has_files(gapic: Any) -> None:
    assert _upload(gapic, "", CUSTOM_IMAGE).model_version_id == "1"  # the bucket's root


def test_a_missing_bucket_is_refused(gapic: Any) -> None:
    with pytest.raises(api.BadRequest, match="no-such-bucket"):
        _upload(gapic, "sm/", bucket="no-such-bucket")


def test_a_new_version_is_checked_too(gapic: Any) -> None:
    from google.cloud.aiplatform_v1 import types

    first = _upload(gapic, "sm/")
    model = types.Model(
        display_name="churn",
        artifact_uri=f"gs://{BUCKET}/keras/",
        container_spec=types.ModelContainerSpec(image_uri=TF_IMAGE),
    )
    request = types.UploadModelRequest(parent=PARENT, model=model, parent_model=first.model)
    with pytest.raises(api.BadRequest, match=_MISSING_SAVED_MODEL):
        gapic.upload_model(request=request, timeout=10).result(timeout=10)
    assert [v.version_id for v in gapic.list_model_versions(name=first.model)] == ["1"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("form", ["http://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_an_unreachable_storage_endpoint_is_unavailable_not_a_pass(form: str) -> None:
    server, url = start_in_thread(storage_url=form.format(port=_closed_port()), today=TODAY)
    try:
        gapic = _client(url)
        with pytest.raises(api.ServiceUnavailable, match="could not list"):
            _upload(gapic, "sm/")
        assert list(gapic.list_models(parent=PARENT)) == []
        assert AdminClient(url).state()["calls"]["UploadModel"] == 1
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_storage_endpoint_nothing_is_looked_into(base_url: str) -> None:
    unchecked = _client(base_url)  # the session emulator of conftest.py: no storage endpoint
    assert AdminClient(base_url).state()["storage_url"] is None
    assert _upload(unchecked, "absent/").model_version_id == "1"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_standalone_emulator_takes_the_storage_endpoint(gcs: Service, how: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    args = [sys.executable, "-m", "emulators.vertex", "--port", "0"]
    if how == "env":
        env["STORAGE_EMULATOR_HOST"] = gcs.url
    else:
        args += ["--storage-url", gcs.url]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().rsplit(" ", 1)[1]
        assert AdminClient(url).state()["storage_url"] == gcs.url
        gapic = _client(url)
        with pytest.raises(api.BadRequest, match=_MISSING_SAVED_MODEL):
            _upload(gapic, "keras/")
        assert _upload(gapic, "sm/").model_version_id == "1"
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---- the bucket's region and the 10 GB cap (Vertex "Import models" page) -----------------------


def _start_fake_gcs_in(location: str) -> Service:
    """fake-gcs-server reports every bucket in its `-location` (default US-CENTRAL1)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(fake_gcs_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
    args += ["-port", str(port), "-location", location, "-log-level", "warn"]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    service = Service("fake-gcs-server", url, proc)
    try:
        wait_http(f"{url}/storage/v1/b", proc=proc)
        create_bucket(url, BUCKET)
        _put(url, "sm/saved_model.pb")
    except Exception:
        service.stop()
        raise
    return service


def test_a_bucket_in_another_region_is_refused(gapic: Any, gcs: Service) -> None:
    from google.cloud.aiplatform_v1 import types

    assert requests.get(f"{gcs.url}/storage/v1/b/{BUCKET}", timeout=5).json()["location"] == (
        "US-CENTRAL1"
    )
    parent = f"projects/{PROJECT}/locations/europe-west4"
    model = types.Model(
        display_name="churn",
        artifact_uri=f"gs://{BUCKET}/sm/",
        container_spec=types.ModelContainerSpec(image_uri=TF_IMAGE),
    )
    request = types.UploadModelRequest(parent=parent, model=model)
    with pytest.raises(api.BadRequest) as caught:
        gapic.upload_model(request=request, timeout=10).result(timeout=10)
    error = caught.value.response.json()["error"]
    assert error["status"] == "FAILED_PRECONDITION"
    assert error["message"] == (
        f"The Cloud Storage bucket of `gs://{BUCKET}/sm/` is in location `us-central1`. It must "
        "be in the same regional location as the service location `europe-west4`."
    )
    assert list(gapic.list_models(parent=parent)) == []
    assert _upload(gapic, "sm/").model_version_id == "1"  # us-central1: same region, any case


@pytest.mark.parametrize("location", ["US", "NAM4"])  # a multi-region, a dual-region
def test_a_multi_region_bucket_is_refused_even_if_it_spans_the_region(location: str) -> None:
    storage = _start_fake_gcs_in(location)
    server, url = start_in_thread(storage_url=storage.url, today=TODAY)
    try:
        with pytest.raises(api.BadRequest, match=f"is in location `{location.lower()}`"):
            _upload(_client(url), "sm/")
    finally:
        server.shutdown()
        server.server_close()
        storage.stop()


@pytest.fixture(scope="module")
def sized() -> Iterator[tuple[StubGcs, str]]:
    """Declared sizes: exactly 10 GB, and 10 GB + 1 byte (fake-gcs-server would need the bytes)."""
    limit = 10 * 10**9
    objects = {
        "at/saved_model.pb": 1_000,
        "at/variables/variables.index": 999_000,
        "at/variables/variables.data-00000-of-00001": limit - 1_000_000,
        "over/saved_model.pb": 1_000,
        "over/variables/variables.index": 999_000,
        "over/variables/variables.data-00000-of-00001": limit - 1_000_000 + 1,
        "gib/saved_model.pb": 2**30 * 9,  # 9 GiB = 9.66 GB: under the decimal cap
    }
    stub = StubGcs({BUCKET: ("US-CENTRAL1", objects)})
    server, url = start_in_thread(storage_url=stub.url, today=TODAY)
    try:
        yield stub, url
    finally:
        server.shutdown()
        server.server_close()
        stub.stop()


def test_artifacts_up_to_10_gb_are_accepted(sized: tuple[StubGcs, str]) -> None:
    gapic = _client(sized[1])
    assert _upload(gapic, "at/").model_version_id == "1"  # exactly 10 * 10**9 bytes
    assert _upload(gapic, "gib/").model_version_id == "1"


def test_artifacts_over_10_gb_are_refused(sized: tuple[StubGcs, str]) -> None:
    AdminClient(sized[1]).reset()
    gapic = _client(sized[1])
    with pytest.raises(api.BadRequest, match=r"total 10000000001 bytes.*10 GB") as caught:
        _upload(gapic, "over/")  # the excess is in a sub-directory: counted too
    assert caught.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert list(gapic.list_models(parent=PARENT)) == []
