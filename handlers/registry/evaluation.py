"""What a version's `ModelEvaluation` holds for the metrics that came with its upload.

Pure functions, no SDK import. The console shows an evaluation's `metrics` through the YAML schema
its `metrics_schema_uri` names, so metric names that identify a task pick that task's schema and
are written under the schema's own field names (`auc` -> `auRoc`, `rmse` ->
`rootMeanSquaredError`, ...); anything else goes under a generic schema as uploaded. The metrics
exactly as uploaded are always kept in `metadata.metrics`, which is what the gate reads back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .labels import MANAGED_BY

SCHEMA_ROOT = "gs://google-cloud-aiplatform/schema/modelevaluation/"
SCHEMAS = {
    "classification": SCHEMA_ROOT + "classification_metrics_1.0.0.yaml",
    "regression": SCHEMA_ROOT + "regression_metrics_1.0.0.yaml",
    "forecasting": SCHEMA_ROOT + "forecasting_metrics_1.0.0.yaml",
    "generic": SCHEMA_ROOT + "general_metrics_1.0.0.yaml",
}

# Normalised metric name (lowercase, letters and digits only) -> the schema's field name.
_CLASSIFICATION = {
    "auc": "auRoc",
    "rocauc": "auRoc",
    "auroc": "auRoc",
    "auprc": "auPrc",
    "prauc": "auPrc",
    "averageprecision": "auPrc",
    "logloss": "logLoss",
}
_REGRESSION = {
    "rmse": "rootMeanSquaredError",
    "rootmeansquarederror": "rootMeanSquaredError",
    "mae": "meanAbsoluteError",
    "meanabsoluteerror": "meanAbsoluteError",
    "mape": "meanAbsolutePercentageError",
    "meanabsolutepercentageerror": "meanAbsolutePercentageError",
    "r2": "rSquared",
    "rsquared": "rSquared",
    "rmsle": "rootMeanSquaredLogError",
    "rootmeansquaredlogerror": "rootMeanSquaredLogError",
}
_FORECASTING_ONLY = {
    "wape": "weightedAbsolutePercentageError",
    "weightedabsolutepercentageerror": "weightedAbsolutePercentageError",
    "rmspe": "rootMeanSquaredPercentageError",
    "rootmeansquaredpercentageerror": "rootMeanSquaredPercentageError",
    "smape": "symmetricMeanAbsolutePercentageError",
    "symmetricmeanabsolutepercentageerror": "symmetricMeanAbsolutePercentageError",
}


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def task_of(names: Mapping[str, Any]) -> str:
    """classification / regression / forecasting when the names say so unambiguously, else generic."""
    keys = {normalise(n) for n in names}
    classification = bool(keys & _CLASSIFICATION.keys())
    forecasting = bool(keys & _FORECASTING_ONLY.keys())
    regression = bool(keys & _REGRESSION.keys())
    if classification and not (regression or forecasting):
        return "classification"
    if forecasting and not classification:
        return "forecasting"
    if regression and not classification:
        return "regression"
    return "generic"


def schema_metrics(values: Mapping[str, float], task: str) -> dict[str, float]:
    """The evaluation's `metrics`: the task schema's fields, or (generic) the metrics as given."""
    if task == "generic":
        return dict(values)
    table = {
        "classification": _CLASSIFICATION,
        "regression": _REGRESSION,
        "forecasting": {**_REGRESSION, **_FORECASTING_ONLY},
    }[task]
    out: dict[str, float] = {}
    for name, value in values.items():
        field = table.get(normalise(name))
        if field is not None and field not in out:
            out[field] = value
    return out


@dataclass(frozen=True)
class EvaluationSpec:
    """One evaluation to import: the ImportModelEvaluation body's `model_evaluation`."""

    display_name: str
    metrics_schema_uri: str
    metrics: dict[str, float]
    metadata: dict[str, Any]
    task: str


def spec_for(
    values: Mapping[str, float], *, source: str, generation: int, origin: str, upload_key: str = ""
) -> EvaluationSpec:
    task = task_of(values)
    what = "metrics.json" if origin == "file" else "model object metadata"
    return EvaluationSpec(
        display_name=f"{MANAGED_BY}: {what} (generation {generation})",
        metrics_schema_uri=SCHEMAS[task],
        metrics=schema_metrics(values, task),
        metadata={
            "managedBy": MANAGED_BY,
            "source": source,
            "sourceGeneration": str(generation),
            "origin": origin,
            "task": task,
            "uploadKey": upload_key,
            "metrics": dict(values),
        },
        task=task,
    )


@dataclass(frozen=True)
class EvaluationInfo:
    name: str
    display_name: str
    metrics_schema_uri: str
    metrics: dict[str, Any]
    metadata: dict[str, Any]
    create_time: str = ""

    @property
    def ours(self) -> bool:
        return self.metadata.get("managedBy") == MANAGED_BY

    def value(self, metric: str) -> float | None:
        """`metric`'s value: as uploaded (ours), else a top-level number, else its schema field."""
        uploaded = self.metadata.get("metrics")
        if isinstance(uploaded, Mapping) and _number(uploaded.get(metric)) is not None:
            return _number(uploaded.get(metric))
        if _number(self.metrics.get(metric)) is not None:
            return _number(self.metrics.get(metric))
        key = normalise(metric)
        for table in (_CLASSIFICATION, _REGRESSION, _FORECASTING_ONLY):
            field = table.get(key)
            if field is not None and _number(self.metrics.get(field)) is not None:
                return _number(self.metrics.get(field))
        return None


def same_source(found: EvaluationInfo, spec: EvaluationSpec) -> bool:
    keys = ("managedBy", "source", "sourceGeneration", "origin")
    return all(found.metadata.get(k) == spec.metadata.get(k) for k in keys)


def value_of(evaluations: list[EvaluationInfo], metric: str) -> float | None:
    """A version's value of `metric`: from its newest evaluation of ours that has it, else from its
    newest evaluation of any origin that has it (e.g. one a pipeline imported)."""
    newest_first = sorted(evaluations, key=lambda e: e.create_time, reverse=True)
    for wanted in (True, False):
        for evaluation in newest_first:
            if evaluation.ours == wanted and evaluation.value(metric) is not None:
                return evaluation.value(metric)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def evaluation_info(evaluation: Any) -> EvaluationInfo:
    """A GAPIC `ModelEvaluation` -> plain values (its class does the conversion: no SDK import)."""
    plain = type(evaluation).to_dict(evaluation)
    created = getattr(evaluation, "create_time", None)
    return EvaluationInfo(
        name=plain.get("name", ""),
        display_name=plain.get("display_name", ""),
        metrics_schema_uri=plain.get("metrics_schema_uri", ""),
        metrics=plain.get("metrics") if isinstance(plain.get("metrics"), dict) else {},
        metadata=plain.get("metadata") if isinstance(plain.get("metadata"), dict) else {},
        create_time=created.isoformat() if created else "",
    )
