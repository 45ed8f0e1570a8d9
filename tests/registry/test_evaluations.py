"""Evaluations: what we import for an upload's metrics, and the Vertex primitives, on the emulator."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from emulators.vertex import AdminClient
from handlers.registry.evaluation import (
    SCHEMAS,
    EvaluationInfo,
    schema_metrics,
    spec_for,
    task_of,
    value_of,
)
from handlers.registry.interface import UPLOAD_KEY_LABEL, VersionRequest
from handlers.registry.vertex import DEFAULT_RETRY, VertexRegistry, make_registry
from tests.conftest import make_settings

PROJECT = "eval-test"
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


@pytest.mark.parametrize(
    ("names", "task"),
    [
        ({"auc": 1}, "classification"),
        ({"roc_auc": 1, "accuracy": 1}, "classification"),
        ({"log_loss": 1}, "classification"),
        ({"rmse": 1, "mae": 1}, "regression"),
        ({"r2": 1}, "regression"),
        ({"wape": 1, "rmse": 1}, "forecasting"),
        ({"auc": 1, "rmse": 1}, "generic"),
        ({"accuracy": 1}, "generic"),
        ({"my_business_metric": 1}, "generic"),
    ],
)
def test_metric_names_pick_the_task_schema(names: dict[str, float], task: str) -> None:
    assert task_of(names) == task


def test_task_schemas_get_the_schema_field_names_and_the_originals_stay_in_metadata() -> None:
    spec = spec_for(
        {"auc": 0.8, "accuracy": 0.7, "log_loss": 0.3},
        source="gs://b/models/x/v1/metrics.json",
        generation=12,
        origin="file",
        upload_key="k",
    )
    assert spec.metrics_schema_uri == SCHEMAS["classification"]
    assert spec.metrics_schema_uri.endswith("/modelevaluation/classification_metrics_1.0.0.yaml")
    assert spec.metrics == {"auRoc": 0.8, "logLoss": 0.3}
    assert spec.metadata["metrics"] == {"auc": 0.8, "accuracy": 0.7, "log_loss": 0.3}
    assert spec.metadata["sourceGeneration"] == "12"
    assert schema_metrics({"rmse": 2.0, "R2": 0.5}, "regression") == {
        "rootMeanSquaredError": 2.0,
        "rSquared": 0.5,
    }
    generic = spec_for({"custom": 1.0}, source="s", generation=1, origin="metadata")
    assert generic.metrics == {"custom": 1.0} and generic.metrics_schema_uri == SCHEMAS["generic"]


def test_values_are_read_back_from_our_evaluation_first() -> None:
    ours = EvaluationInfo(
        "n1", "ours", SCHEMAS["classification"], {"auRoc": 0.8},
        {"managedBy": "gcs-model-registrar", "metrics": {"auc": 0.8}}, "2026-01-02",
    )  # fmt: skip
    pipeline = EvaluationInfo(
        "n2", "pipeline", SCHEMAS["classification"], {"auRoc": 0.99}, {}, "2026-01-03"
    )
    assert value_of([pipeline, ours], "auc") == 0.8
    assert value_of([pipeline], "auc") == 0.99  # through the schema's field name
    assert value_of([pipeline], "auRoc") == 0.99
    assert value_of([pipeline], "rmse") is None
    assert value_of([], "auc") is None


@pytest.fixture
def registry(emulator_url: str, admin: AdminClient) -> VertexRegistry:
    client = make_registry(
        make_settings(project=PROJECT, vertex_emulator_host=emulator_url)
    )._client
    return VertexRegistry(
        client, project=PROJECT, location="us-central1",
        retry=DEFAULT_RETRY.with_delay(initial=0.001, maximum=0.01), rpc_timeout=10, poll_initial=0.01,
    )  # fmt: skip


def _version(registry: VertexRegistry, key: str) -> Any:
    return registry.ensure_version(
        VersionRequest(
            display_name="scored",
            artifact_uri=f"gs://eval-bucket/registered/{key}/",
            serving_image=IMAGE,
            description="d",
            labels={UPLOAD_KEY_LABEL: key},
        )
    )


def test_an_evaluation_is_imported_once_per_source_and_listed_per_version(
    registry: VertexRegistry, admin: AdminClient
) -> None:
    first, second = _version(registry, "k1"), _version(registry, "k2")
    spec = spec_for({"auc": 0.8}, source="gs://b/m/metrics.json", generation=5, origin="file")
    imported, reused = registry.ensure_evaluation(first.version_name, spec)
    assert not reused and imported.ours and imported.value("auc") == 0.8
    again, reused = registry.ensure_evaluation(first.version_name, spec)
    assert reused and again.name == imported.name
    newer = replace(spec, metadata={**spec.metadata, "sourceGeneration": "6"})
    _, reused = registry.ensure_evaluation(first.version_name, newer)
    assert not reused
    assert len(registry.list_model_evaluations(first.version_name)) == 2
    assert registry.list_model_evaluations(second.version_name) == []
    calls = admin.state()["calls"]
    assert calls["ImportModelEvaluation"] == 2


def test_a_lost_import_reply_is_found_not_repeated(
    registry: VertexRegistry, admin: AdminClient
) -> None:
    version = _version(registry, "k1")
    admin.fault("ImportModelEvaluation", status=503, count=1, when="after")
    spec = spec_for({"rmse": 1.5}, source="gs://b/m/metrics.json", generation=7, origin="file")
    found, _ = registry.ensure_evaluation(version.version_name, spec)
    assert found.value("rmse") == 1.5
    assert len(registry.list_model_evaluations(version.version_name)) == 1
