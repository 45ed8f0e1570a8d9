"""UploadModel's containerSpec rules (emulators/vertex/containers.py), through the real GAPIC
client over REST: a custom image must come from Artifact Registry / Container Registry, one port
in 1-65535, routes are paths, env names are C identifiers, and a prebuilt image past its end of
availability (judged on the emulator's own `today`) is refused."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions

from tests.emulators.helpers import upload

TFS = "us-central1-docker.pkg.dev/emu-project/tensorflow-serving/tensorflow/serving:2.20.0"
TFS_SPEC = {
    "image_uri": TFS,
    "command": ["/usr/bin/tensorflow_model_server"],
    "args": ["--rest_api_port=8501", "--model_name=churn", "--model_base_path=$(AIP_STORAGE_URI)"],
    "ports": [{"container_port": 8501}],
    "predict_route": "/v1/models/churn:predict",
    "health_route": "/v1/models/churn",
}


def _upload(gapic: Any, **spec: Any) -> Any:
    return upload(gapic, container_spec={**TFS_SPEC, **spec})


def test_tf_serving_custom_container_is_accepted_and_kept(gapic, admin):
    result = _upload(gapic)
    model = gapic.get_model(name=f"{result.model}@{result.model_version_id}")
    spec = model.container_spec
    assert spec.image_uri == TFS
    assert list(spec.args) == TFS_SPEC["args"]
    assert [p.container_port for p in spec.ports] == [8501]
    assert spec.predict_route == "/v1/models/churn:predict"
    assert spec.health_route == "/v1/models/churn"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"image_uri": "tensorflow/serving:2.20.0"}, "Artifact Registry"),
        ({"image_uri": "docker.io/tensorflow/serving:2.20.0"}, "Artifact Registry"),
        ({"image_uri": "ghcr.io/acme/serving:1"}, "Artifact Registry"),
        ({"ports": [{"container_port": 8501}, {"container_port": 8500}]}, "more than one port"),
        ({"ports": [{"container_port": 70000}]}, "between 1 and 65535"),
        ({"predict_route": "v1/models/churn:predict"}, "starting with '/'"),
        ({"health_route": "health check"}, "starting with '/'"),
        ({"env": [{"name": "1BAD", "value": "x"}]}, "C identifier"),
        ({"env": [{"name": "MODEL-NAME", "value": "x"}]}, "C identifier"),
    ],
)
def test_invalid_container_specs_are_refused(gapic, admin, spec, message):
    with pytest.raises(exceptions.BadRequest, match=message):
        _upload(gapic, **spec)
    assert admin.state()["models"] == {}


def test_gcr_and_env_variables_are_accepted(gapic, admin):
    _upload(
        gapic,
        image_uri="gcr.io/emu-project/serving@sha256:" + "0" * 64,
        env=[{"name": "MODEL_NAME", "value": "churn"}],
    )


def test_prebuilt_image_past_its_end_of_availability_is_refused(gapic, admin):
    prebuilt = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    old = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-13:latest"
    with pytest.raises(exceptions.BadRequest, match="end of availability on 2025-11-28"):
        upload(gapic, container_spec={"image_uri": old})
    upload(gapic, container_spec={"image_uri": prebuilt})  # 2026-12-07: still available
    assert admin.config(today="2027-01-15")["today"] == "2027-01-15"
    with pytest.raises(exceptions.BadRequest, match="end of availability on 2027-01-14"):
        upload(gapic, container_spec={"image_uri": prebuilt})
    _upload(gapic)  # a custom container has no such date
    with pytest.raises(exceptions.BadRequest, match="only the :latest tag"):
        admin.config(today="2026-12-07")
        upload(gapic, container_spec={"image_uri": prebuilt.replace(":latest", ":2024")})
    admin.reset()  # back to the startup date
    upload(gapic, container_spec={"image_uri": prebuilt})
