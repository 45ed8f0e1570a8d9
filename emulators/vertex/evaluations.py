"""ModelEvaluation resources (ImportModelEvaluation, GetModelEvaluation, ListModelEvaluations).

Shapes follow aiplatform_v1 `types/model_evaluation.py` and `types/model_service.py`; paths
follow `services/model_service/transports/rest_base.py`:

- `POST /v1/{parent=projects/*/locations/*/models/*}/evaluations:import`, body
  `{"modelEvaluation": {...}}` -> the ModelEvaluation (not a long-running operation);
- `GET /v1/{name=projects/*/locations/*/models/*/evaluations/*}`;
- `GET /v1/{parent=projects/*/locations/*/models/*}/evaluations?filter=&pageSize=&pageToken=`.

An evaluation belongs to one model *version*: a parent `models/M@VERSION` (or `@alias`) names it,
`models/M` means the default version (as everywhere in the Model Registry; the high-level SDK
always sends `M@VERSION`). A version holds any number of evaluations; ids are server-assigned
numbers, unique within the model, so the resource name `…/models/M/evaluations/E` carries no
version (the SDK builds names that way) and GetModelEvaluation finds it in whichever version
holds it (`…/models/M@V/evaluations/E` must name the holding version).

This module validates and renders; the Store keeps evaluations on their Version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emulators.vertex.errors import invalid
from emulators.vertex.resources import camel_keys

EVALUATION_NAME = re.compile(
    r"(?P<model>projects/[^/]+/locations/[^/]+/models/[^/@:]+(?:@[^/@:]+)?)"
    r"/evaluations/(?P<evaluation>[^/:]+)"
)
# aiplatform.v1.ModelEvaluation (JSON names)
FIELDS = frozenset(
    [
        "name",
        "displayName",
        "metricsSchemaUri",
        "metrics",
        "createTime",
        "sliceDimensions",
        "dataItemSchemaUri",
        "annotationSchemaUri",
        "modelExplanation",
        "explanationSpecs",
        "metadata",
    ]
)
OUTPUT_ONLY = frozenset({"name", "createTime"})
REQUEST_FIELDS = frozenset({"parent", "modelEvaluation"})
_STRINGS = ("displayName", "metricsSchemaUri", "dataItemSchemaUri", "annotationSchemaUri")


def parse_name(name: str) -> tuple[str, str]:
    """`…/models/M[@sel]/evaluations/E` -> (`…/models/M[@sel]`, E)."""
    match = EVALUATION_NAME.fullmatch(name)
    if not match:
        raise invalid(
            f"Invalid resource name {name!r}: expected "
            "projects/P/locations/L/models/MODEL/evaluations/EVALUATION."
        )
    return match["model"], match["evaluation"]


def check_import(parent: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The ImportModelEvaluationRequest body -> the evaluation fields to store (camelCase).

    `metrics_schema_uri` is required and must be a `gs://` URI. The proto does not mark the field
    REQUIRED and no page says what Vertex does without it; the stricter reading is taken (every
    evaluation Vertex produces has one, and `metrics` are meaningless without their schema).
    """
    request = camel_keys(dict(body))
    unknown = sorted(set(request) - REQUEST_FIELDS)
    if unknown:
        raise invalid(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
            "'ImportModelEvaluationRequest': Cannot find field."
        )
    if request.get("parent") not in (None, "", parent):
        raise invalid(f"parent {request['parent']!r} does not match the URL's {parent!r}.")
    raw = request.get("modelEvaluation")
    if not isinstance(raw, Mapping):
        raise invalid("ImportModelEvaluationRequest.model_evaluation is required.")
    evaluation = camel_keys(dict(raw))  # top level only: metrics/metadata are free-form Values
    unknown = sorted(set(evaluation) - FIELDS)
    if unknown:
        raise invalid(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
            "'model_evaluation': Cannot find field."
        )
    for key in _STRINGS:
        if key in evaluation and not isinstance(evaluation[key], str):
            raise invalid(f"ModelEvaluation.{key} must be a string.")
    uri = evaluation.get("metricsSchemaUri")
    if not uri:
        raise invalid("ModelEvaluation.metrics_schema_uri is required.")
    if not uri.startswith("gs://") or len(uri) <= len("gs://"):
        raise invalid(
            f"ModelEvaluation.metrics_schema_uri {uri!r} must point to a YAML file in Cloud "
            "Storage (gs://...), e.g. gs://google-cloud-aiplatform/schema/modelevaluation/"
            "classification_metrics_1.0.0.yaml."
        )
    dimensions = evaluation.get("sliceDimensions", [])
    if not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions):
        raise invalid("ModelEvaluation.slice_dimensions must be a list of strings.")
    if not isinstance(evaluation.get("explanationSpecs", []), list):
        raise invalid("ModelEvaluation.explanation_specs must be a list.")
    if not isinstance(evaluation.get("modelExplanation", {}), Mapping):
        raise invalid("ModelEvaluation.model_explanation must be an object.")
    return {k: v for k, v in evaluation.items() if k not in OUTPUT_ONLY and v not in (None, [])}


def render(model_name: str, evaluation_id: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """`stored`: the fields from `check_import` plus `createTime`."""
    return {"name": f"{model_name}/evaluations/{evaluation_id}", **stored}
