"""Serving images as data (handlers/serving_images.py): which TensorFlow an image runs, each
prebuilt image's lifecycle, the one warn/refuse rule, and the container spec TF Serving needs."""

from __future__ import annotations

from datetime import date

import pytest

from handlers import serving_images as si
from handlers.errors import SettingsError
from handlers.settings import Settings

PREBUILT = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
TFS = "us-central1-docker.pkg.dev/p/tensorflow-serving/tensorflow/serving:2.20.0"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        (PREBUILT, "2.15"),
        ("europe-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-15:latest", "2.15"),
        ("asia-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-12:latest", "2.12"),
        ("gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-8:latest", "2.8"),
        ("eu.gcr.io/cloud-aiplatform/prediction/tf2-gpu.2-11:latest", "2.11"),
        ("us-docker.pkg.dev/vertex-ai/prediction/tf-cpu.1-15:latest", "1.15"),
        ("us-docker.pkg.dev/my-project/serving/tf2-cpu.2-15:latest", None),  # not Vertex's
        ("us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-3:latest", None),
        ("tensorflow/serving:2.15.1", None),
    ],
)
def test_prebuilt_tf_version(image, version):
    assert si.prebuilt_tf_version(image) == version


@pytest.mark.parametrize(
    ("image", "version"),
    [
        (TFS, "2.20"),
        ("tensorflow/serving:2.15.1", "2.15"),
        ("docker.io/tensorflow/serving:2.20.0-gpu", "2.20"),
        ("europe-west4-docker.pkg.dev/p/r/tensorflow/serving@sha256:" + "a" * 64, None),
        ("tensorflow/serving:latest", None),
        (PREBUILT, None),
    ],
)
def test_tf_serving_version(image, version):
    assert si.tf_serving_version(image) == version


def test_every_prebuilt_tf_image_has_its_dates_and_source():
    assert {v: p.end_of_availability for v, p in si.PREBUILT.items()} == {
        "2.12": date(2025, 6, 30),
        "2.13": date(2025, 11, 28),
        "2.14": date(2027, 1, 14),
        "2.15": date(2027, 1, 14),
    }
    for prebuilt in si.PREBUILT.values():
        assert prebuilt.supported_tags == ("latest",)
        assert prebuilt.source.startswith("https://cloud.google.com/vertex-ai/")
    gpu = "europe-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-14:latest"
    assert si.lifecycle(gpu) is si.PREBUILT["2.14"]
    assert si.lifecycle(TFS) is None


def test_one_rule_warns_within_60_days_and_refuses_after_the_date():
    eol = date(2027, 1, 14)
    far = si.check(PREBUILT, date(2026, 11, 14))  # 61 days
    assert far.ok and not far.warn and far.days_left == 61
    near = si.check(PREBUILT, date(2026, 11, 15))  # 60 days
    assert near.ok and near.warn and near.days_left == 60
    assert "SERVING_CONTAINER_IMAGE_URI=" in near.message
    last = si.check(PREBUILT, eol)
    assert last.ok and last.warn and last.days_left == 0
    past = si.check(PREBUILT, date(2027, 1, 15), replacement=TFS)
    assert not past.ok and past.days_left == -1
    assert f"SERVING_CONTAINER_IMAGE_URI={TFS}" in past.message
    assert "registrar move-image" in past.message
    old = si.check("gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-12:latest", date(2026, 12, 7))
    assert not old.ok and "2025-06-30" in old.message
    custom = si.check(TFS, date(2030, 1, 1))
    assert custom.ok and not custom.warn and custom.end_of_availability is None


def test_only_latest_is_a_supported_tag():
    pinned = si.check(PREBUILT.replace(":latest", ":20240101"), date(2026, 1, 1))
    assert not pinned.ok and "only the :latest tag" in pinned.message
    assert f"SERVING_CONTAINER_IMAGE_URI={PREBUILT}" in pinned.message
    digest = PREBUILT.replace(":latest", "@sha256:" + "0" * 64)  # a digest is no tag
    assert si.check(digest, date(2026, 1, 1)).ok


def test_default_serving_image_is_tf_serving_through_artifact_registry():
    settings = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "my-project", "VERTEX_LOCATION": "europe-west4"}
    )
    assert settings.serving_image == (
        "europe-west4-docker.pkg.dev/my-project/tensorflow-serving/tensorflow/serving:2.20.0"
    )
    status = si.check(settings.serving_image, date(2026, 12, 7))
    assert status.ok and not status.warn  # not past, nor within 60 days of, any date
    assert si.resolve_tf_version(settings.serving_image, None) == "2.20"


def test_version_from_the_image_or_the_setting():
    resolve = si.resolve_tf_version
    assert resolve(PREBUILT, None) == "2.15"
    assert resolve(PREBUILT, "2.15") == "2.15"
    assert resolve(TFS, None) == "2.20"
    assert resolve("us-docker.pkg.dev/p/r/custom:1", "2.14") == "2.14"
    with pytest.raises(SettingsError, match="Set SERVING_TF_VERSION"):
        resolve("us-docker.pkg.dev/p/r/custom:1", None)
    with pytest.raises(SettingsError, match="contradicts"):
        resolve(PREBUILT, "2.14")
    with pytest.raises(SettingsError, match="contradicts"):
        resolve(TFS, "2.21")
    with pytest.raises(SettingsError, match=r"gen_op_lists\.py registry"):
        resolve("gcr.io/cloud-aiplatform/prediction/tf2-cpu.2-8:latest", None)


def test_tf_serving_container_spec():
    spec = si.container_spec(TFS, "churn")
    assert si.numbered_layout(TFS)
    assert spec.image_uri == TFS
    assert spec.command == ("/usr/bin/tensorflow_model_server",)
    assert "--model_name=churn" in spec.args
    assert "--model_base_path=$(AIP_STORAGE_URI)" in spec.args
    assert "--rest_api_port=8501" in spec.args
    assert spec.ports == (8501,)
    assert spec.predict_route == "/v1/models/churn:predict"
    assert spec.health_route == "/v1/models/churn"
    assert si.container_spec(PREBUILT, "churn").as_api() == {"image_uri": PREBUILT}
    assert not si.numbered_layout(PREBUILT)
