"""ModelEvaluations (Import/Get/List) through the GAPIC REST client and the high-level SDK.

Shapes: aiplatform_v1 `types/model_evaluation.py`, `types/model_service.py`; paths:
`services/model_service/transports/rest_base.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from google.api_core import exceptions as api

from emulators.vertex import start_in_thread
from tests.emulators.conftest import TODAY
from tests.emulators.helpers import PARENT, name, upload

SCHEMA = "gs://google-cloud-aiplatform/schema/modelevaluation/classification_metrics_1.0.0.yaml"
METRICS = {"auRoc": 0.97, "logLoss": 0.21, "confusionMatrix": {"rows": [[5.0, 1.0], [0.0, 7.0]]}}


def _evaluation(**fields: Any) -> Any:
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format, struct_pb2

    metrics = struct_pb2.Value()
    json_format.ParseDict(fields.pop("metrics", METRICS), metrics)
    spec: dict[str, Any] = {"display_name": "holdout", "metrics_schema_uri": SCHEMA}
    spec.update(fields)
    return aiplatform_v1.ModelEvaluation(metrics=metrics, **spec)


def _import(gapic: Any, parent: str, **fields: Any) -> Any:
    return gapic.import_model_evaluation(
        parent=parent, model_evaluation=_evaluation(**fields), timeout=10
    )


def _plain(value: Any) -> Any:
    """proto-plus marshals protobuf Values into map/list composites: back to JSON types."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return value
    return [_plain(v) for v in value]


def _ids(evaluations: Any) -> list[str]:
    return [e.name.rsplit("/", 1)[1] for e in evaluations]


def test_import_returns_the_evaluation_with_server_fields(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    imported = _import(
        gapic,
        f"{first.model}@1",
        name="projects/x/locations/y/models/z/evaluations/chosen-by-client",  # output only
        slice_dimensions=["annotationSpec"],
        metadata={"evaluation_dataset_path": ["gs://data/holdout.csv"]},
    )
    evaluation_id = imported.name.rsplit("/", 1)[1]
    assert imported.name == f"{first.model}/evaluations/{evaluation_id}"  # no version in it
    assert evaluation_id.isdigit()
    assert imported.create_time is not None
    assert imported.display_name == "holdout"
    assert imported.metrics_schema_uri == SCHEMA
    assert _plain(imported.metrics) == METRICS
    assert list(imported.slice_dimensions) == ["annotationSpec"]
    assert _plain(imported.metadata) == {"evaluation_dataset_path": ["gs://data/holdout.csv"]}

    got = gapic.get_model_evaluation(name=imported.name)
    assert (got.name, _plain(got.metrics)) == (imported.name, METRICS)
    assert gapic.get_model_evaluation(name=f"{first.model}@1/evaluations/{evaluation_id}") == got
    with pytest.raises(api.NotFound):
        gapic.get_model_evaluation(name=f"{first.model}/evaluations/123")


def test_evaluations_belong_to_a_version_and_a_bare_model_means_the_default(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model, version_aliases=["default"])  # default: version 2
    on_one = _import(gapic, f"{first.model}@1", display_name="v1-eval")
    on_default = _import(gapic, first.model, display_name="default-eval")  # lands on version 2

    assert _ids(gapic.list_model_evaluations(parent=f"{first.model}@1")) == _ids([on_one])
    assert _ids(gapic.list_model_evaluations(parent=f"{first.model}@2")) == _ids([on_default])
    assert _ids(gapic.list_model_evaluations(parent=first.model)) == _ids([on_default])
    with pytest.raises(api.NotFound):  # it exists, but on version 1
        gapic.get_model_evaluation(name=f"{first.model}@2/evaluations/{_ids([on_one])[0]}")
    with pytest.raises(api.NotFound):
        _import(gapic, f"{first.model}@7")
    with pytest.raises(api.NotFound):
        _import(gapic, name("ghost"))


def test_a_version_holds_several_evaluations_listed_in_pages(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    made = [_import(gapic, f"{first.model}@1", display_name=f"eval-{i}") for i in range(3)]
    assert len(set(_ids(made))) == 3
    pager = gapic.list_model_evaluations(request={"parent": f"{first.model}@1", "page_size": 2})
    assert len(list(pager.pages)) == 2
    listed = gapic.list_model_evaluations(request={"parent": f"{first.model}@1", "page_size": 2})
    assert _ids(listed) == _ids(made)
    found = gapic.list_model_evaluations(
        request={"parent": f"{first.model}@1", "filter": 'display_name="eval-1"'}
    )
    assert _ids(found) == _ids(made[1:2])
    with pytest.raises(api.BadRequest):
        list(
            gapic.list_model_evaluations(
                request={"parent": f"{first.model}@1", "filter": 'labels.a="b"'}
            )
        )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metrics_schema_uri": ""}, "metrics_schema_uri is required"),
        ({"metrics_schema_uri": "https://example.com/schema.yaml"}, "gs://"),
    ],
)
def test_metrics_schema_uri_is_required(gapic: Any, fields: dict[str, Any], message: str) -> None:
    first = upload(gapic, model_id="churn")
    with pytest.raises(api.BadRequest, match=message):
        _import(gapic, f"{first.model}@1", **fields)
    assert list(gapic.list_model_evaluations(parent=first.model)) == []


def test_malformed_requests_are_refused(gapic: Any, base_url: str) -> None:
    upload(gapic, model_id="churn")
    url = f"{base_url}/v1/{PARENT}/models/churn%401/evaluations:import"
    for body, expected in [
        ({}, "model_evaluation is required"),
        ({"modelEvaluation": {"metricsSchemaUri": SCHEMA, "colour": 1}}, "colour"),
        ({"modelEvaluation": {"metricsSchemaUri": SCHEMA}, "extra": 1}, "extra"),
        ({"modelEvaluation": {"metricsSchemaUri": SCHEMA, "sliceDimensions": "a"}}, "slice"),
        ({"parent": f"{PARENT}/models/other", "modelEvaluation": {}}, "does not match"),
    ]:
        reply = requests.post(url, json=body, timeout=5)
        error = reply.json()["error"]
        assert (reply.status_code, error["status"]) == (400, "INVALID_ARGUMENT"), body
        assert expected in error["message"], (body, error)
    # only metrics_schema_uri is needed; metrics may be any JSON value (google.protobuf.Value)
    reply = requests.post(
        url, json={"modelEvaluation": {"metricsSchemaUri": SCHEMA, "metrics": 0.5}}, timeout=5
    )
    assert reply.status_code == 200 and reply.json()["metrics"] == 0.5


def test_sdk_model_lists_and_gets_evaluations(aip: Any, gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model, version_aliases=["default"])
    old = _import(gapic, f"{first.model}@1", display_name="old")
    new = _import(gapic, f"{first.model}@2", display_name="new")

    model = aip.Model("churn")  # the default version, 2
    assert [e.resource_name for e in model.list_model_evaluations()] == [new.name]
    evaluation = model.get_model_evaluation()
    assert evaluation.resource_name == new.name
    assert _plain(evaluation.metrics) == METRICS
    by_id = model.get_model_evaluation(evaluation_id=old.name.rsplit("/", 1)[1])
    assert by_id.display_name == "old"  # GetModelEvaluation by name, any version
    assert [e.display_name for e in aip.Model("churn", version="1").list_model_evaluations()] == [
        "old"
    ]
    assert aip.ModelEvaluation(old.name).gca_resource.metrics_schema_uri == SCHEMA


def test_deleting_a_version_deletes_its_evaluations(gapic: Any) -> None:
    first = upload(gapic, model_id="churn")
    upload(gapic, parent_model=first.model)
    doomed = _import(gapic, f"{first.model}@2")
    kept = _import(gapic, f"{first.model}@1")
    gapic.delete_model_version(name=f"{first.model}@2", timeout=10).result(timeout=10)
    with pytest.raises(api.NotFound):
        gapic.get_model_evaluation(name=doomed.name)
    assert gapic.get_model_evaluation(name=kept.name).name == kept.name


def test_evaluations_survive_a_restart(tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    state = str(tmp_path / "vertex.json")
    names = []
    for _ in range(2):
        server, url = start_in_thread(state_file=state, today=TODAY)
        try:
            gapic = aiplatform_v1.ModelServiceClient(
                transport="rest",
                client_options={"api_endpoint": url},
                credentials=AnonymousCredentials(),
            )
            if not names:
                upload(gapic, model_id="churn")
                names.append(_import(gapic, f"{name('churn')}@1").name)
            else:
                assert _plain(gapic.get_model_evaluation(name=names[0]).metrics) == METRICS
        finally:
            server.shutdown()
            server.server_close()
