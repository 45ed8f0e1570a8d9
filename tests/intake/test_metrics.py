"""Parsing and validating the metrics that travel with an upload (handlers/intake/metrics.py)."""

from __future__ import annotations

import json

import pytest

from handlers.intake.metrics import MAX_METRICS_BYTES, MetricsRejected, is_stale, metrics_dir, parse
from tests.conftest import make_settings


def test_a_flat_object_of_numbers_is_parsed_to_floats() -> None:
    assert parse(b'{"auc": 0.91, "loss": 1, "count": 12345678901234}', "m") == {
        "auc": 0.91,
        "loss": 1.0,
        "count": 12345678901234.0,
    }


def test_text_from_custom_metadata_is_accepted() -> None:
    assert parse('{"rmse": 0.5}', "metadata") == {"rmse": 0.5}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not json", "metrics.not_json"),
        (b"\xff\xfe", "metrics.not_json"),
        (b"[0.9]", "metrics.not_an_object"),
        (b"0.9", "metrics.not_an_object"),
        (b"{}", "metrics.empty"),
        (b'{"auc": "0.9"}', "metrics.not_numeric"),
        (b'{"auc": true}', "metrics.not_numeric"),
        (b'{"auc": null}', "metrics.not_numeric"),
        (b'{"auc": {"value": 0.9}}', "metrics.not_flat"),
        (b'{"auc": [0.9]}', "metrics.not_flat"),
        (b'{"auc": NaN}', "metrics.not_finite"),
        (b'{"auc": Infinity}', "metrics.not_finite"),
        (b'{"auc": -Infinity}', "metrics.not_finite"),
        (b'{"auc": 1e999}', "metrics.not_finite"),
        (b'{"auc": ' + b"9" * 400 + b"}", "metrics.not_finite"),
        (b'{"auc": 0.9, "auc": 0.8}', "metrics.duplicate_name"),
        (b'{"": 0.9}', "metrics.bad_name"),
        (json.dumps({"x" * 129: 1}).encode(), "metrics.bad_name"),
        (b'{"a\\u0000b": 1}', "metrics.bad_name"),
        (b"[" * 100_000 + b"]" * 100_000, "metrics.not_json"),
    ],
)
def test_bad_metrics_are_rejected_with_their_own_code(data: bytes, code: str) -> None:
    with pytest.raises(MetricsRejected) as caught:
        parse(data, "gs://b/models/x/v1/metrics.json")
    assert caught.value.code == code
    assert "gs://b/models/x/v1/metrics.json" in str(caught.value)
    assert "flat JSON object of numbers" in str(caught.value)


def test_the_size_cap_is_checked_before_parsing() -> None:
    big = b'{"a": 1' + b" " * MAX_METRICS_BYTES + b"}"
    with pytest.raises(MetricsRejected) as caught:
        parse(big, "m")
    assert caught.value.code == "metrics.too_large"
    at_limit = b'{"a": 1' + b" " * (MAX_METRICS_BYTES - 8) + b"}"
    assert parse(at_limit, "m") == {"a": 1.0}


def test_where_metrics_json_belongs() -> None:
    assert metrics_dir("models/x/v1/model.keras", "keras") == "models/x/v1/"
    assert metrics_dir("models/x/v1/", "saved_model") == "models/x/v1/"
    assert metrics_dir("model.keras", "keras") == ""


def test_a_metrics_file_much_older_than_its_model_is_stale() -> None:
    settings = make_settings(directory_upload_window_seconds=60)
    model = 1_000_000_000_000_000
    assert not is_stale(model - 59 * 1_000_000, model, settings)
    assert is_stale(model - 61 * 1_000_000, model, settings)
    assert not is_stale(model + 10**12, model, settings)  # written after the model: late metrics
