"""Lineage: the labels and description every registered version carries (pure, no services).

Built through handlers/registration.py, which turns the pipeline's values (upload, published copy,
report) into the plain `lineage.Provenance` the registry takes."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from handlers.errors import PermanentError
from handlers.gcs.objects import ObjectInfo
from handlers.gcs.publish import Published
from handlers.intake.events import ObjectEvent
from handlers.intake.uploads import Upload
from handlers.registration import version_request
from handlers.registry.interface import UPLOAD_KEY_LABEL
from handlers.registry.lineage import MANAGED_BY, label_value, parse_aliases
from handlers.registry.vertex_types import ALIAS_PATTERN
from handlers.settings import Settings
from handlers.validation.report import TensorInfo, ValidationReport

LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")  # Vertex's label value rule


def _upload(metadata: dict[str, str] | None = None, bucket: str = "My.Bucket") -> Upload:
    member = ObjectInfo(bucket, "models/churn/v3/model.keras", 1764151200000000, 1234,
                        metadata=metadata or {})  # fmt: skip
    event = ObjectEvent(bucket, member.name, member.generation, event_id="e1")
    return Upload("keras", bucket, member.name, (member,), event)


def _report(smoke: str = "passed") -> ValidationReport:
    return ValidationReport(
        "keras",
        Path("/tmp/export"),
        (TensorInfo("x", "float32", (None, 4)),),
        (TensorInfo("y", "float32", (None, 1)),),
        smoke,
    )


PUBLISHED = Published("gs://b/registered/churn/sha256-ab/", "ab" * 32, {"saved_model.pb": "00"})


def _request(**changes):
    arguments = dict(
        upload=_upload(),
        display_name="churn",
        version_hint="v3",
        aliases=("canary",),
        published=PUBLISHED,
        validation=_report(),
        settings=Settings(project="my-project"),
    )
    return version_request(**{**arguments, **changes})


def test_labels_identify_the_upload_and_obey_vertex_label_rules() -> None:
    request = _request()
    upload = _upload()
    assert request.labels == {
        "managed-by": MANAGED_BY,
        UPLOAD_KEY_LABEL: upload.upload_key,
        "source-generation": "1764151200000000",
        "source-kind": "keras",
        "content-sha256": ("ab" * 32)[:40],
        "validation": "passed",
        "source-bucket": "my-bucket",
        "source-version": "v3",
    }
    assert all(LABEL_VALUE.fullmatch(v) for v in request.labels.values())


def test_description_carries_the_provenance_after_the_users_text() -> None:
    request = _request(upload=_upload({"description": "  Retrained on November data  "}))
    first, provenance = request.description.split("\n\n", 1)
    assert first == "Retrained on November data"
    assert "gs://My.Bucket/models/churn/v3/model.keras (generation 1764151200000000" in provenance
    assert f"sha256 {'ab' * 32}" in provenance and "Version from the path: v3." in provenance
    assert "serving_default inputs x:float32[None, 4]; outputs y:float32[None, 1]" in provenance


def test_description_is_capped_for_vertex() -> None:
    request = _request(upload=_upload({"description": "x" * 10_000}))
    assert len(request.description) == 4000


def test_a_skipped_smoke_test_is_visible_in_the_label() -> None:
    assert _request(validation=_report("skipped: string input")).labels["validation"] == (
        "smoke-skipped"
    )


def test_the_request_follows_the_settings() -> None:
    keep = replace(Settings(project="my-project"), make_new_version_default=False)
    request = _request(settings=keep)
    assert request.make_default is False and request.aliases == ("canary",)
    assert request.serving_image == keep.serving_image
    assert request.artifact_uri == PUBLISHED.artifact_uri


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, ()), ("", ()), ("canary, prod-2 ,canary", ("canary", "prod-2"))],
)
def test_aliases_from_metadata(raw: str | None, expected: tuple[str, ...]) -> None:
    assert parse_aliases(raw, "gs://b/m.keras") == expected
    assert all(ALIAS_PATTERN.fullmatch(a) for a in expected)


@pytest.mark.parametrize("bad", ["Prod", "1st", "a", "x_y", "end-", "123"])
def test_bad_aliases_are_rejected_naming_them(bad: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_aliases(f"ok-alias,{bad}", "gs://b/m.keras")
    assert caught.value.code == "bad_alias" and repr(bad) in str(caught.value)


def test_label_value_is_always_a_valid_vertex_label_value() -> None:
    assert label_value("My.Bucket_Name") == "my-bucket_name"
    assert label_value("x" * 100) == "x" * 63
    assert LABEL_VALUE.fullmatch(label_value("Ünïcode / spaces"))


def test_non_finite_outputs_on_the_sample_are_on_the_label_and_first_in_the_description() -> None:
    report = replace(_report(), sample_non_finite=("y",))
    long_text = "d" * 5000  # the description is capped: the warning must survive the cap
    request = _request(validation=report, upload=_upload({"description": long_text}))
    assert request.labels["validation"] == "passed-sample-non-finite"
    assert LABEL_VALUE.fullmatch(request.labels["validation"])
    assert request.description.startswith("WARNING: output(s) y gave NaN or infinity")
    section = report.record()
    assert section["findings"] == [
        {"code": "smoke.sample_non_finite", "outputs": ["y"], "message": report.non_finite_text()}
    ]
    assert "NaN/inf on the random sample: y" in report.summary()
    assert "findings" not in _report().record() and _request().labels["validation"] == "passed"
