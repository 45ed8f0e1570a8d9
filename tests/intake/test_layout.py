from __future__ import annotations

import re

import pytest

from handlers.errors import PermanentError
from handlers.intake.layout import (
    KerasFile,
    NotAModel,
    SavedModelMember,
    classify,
    display_name_for,
)
from handlers.settings import Settings
from tests.conftest import make_settings

S = make_settings()


@pytest.mark.parametrize(
    "name",
    [
        "models/x/v1/saved_model.pb",
        "models/x/v1/fingerprint.pb",
        "models/x/v1/variables/variables.index",
        "models/x/v1/variables/variables.data-00000-of-00002",
        "models/x/v1/assets/vocab.txt",
        "models/x/v1/assets.extra/tf_serving_warmup_requests",
    ],
)
def test_savedmodel_members_map_to_their_folder(name: str) -> None:
    artifact = classify(name, S)
    assert isinstance(artifact, SavedModelMember)
    assert artifact.candidate_dirs == ("models/x/v1/",)


def test_nested_asset_paths_offer_every_candidate_deepest_first() -> None:
    artifact = classify("models/x/v1/assets/assets/a.txt", S)
    assert isinstance(artifact, SavedModelMember)
    assert artifact.candidate_dirs == ("models/x/v1/assets/", "models/x/v1/")


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("models/x/README.md", "neither"),
        ("models/metrics.json", "names no single upload"),
        ("models/x/model.h5", "legacy HDF5"),
        ("models/x/v1/", "folder"),
        ("models/gcloud/tmp/parallel_composite_uploads/see_gcloud/abc", "composite"),
    ],
)
def test_non_models_are_ignored_with_a_reason(name: str, why: str) -> None:
    artifact = classify(name, S)
    assert isinstance(artifact, NotAModel) and why in artifact.reason


def test_metrics_json_is_its_own_kind_never_a_savedmodel_member() -> None:
    from handlers.intake.layout import MetricsFile

    artifact = classify("models/x/v1/metrics.json", S)
    assert isinstance(artifact, MetricsFile) and artifact.directory == "models/x/v1/"
    assert isinstance(artifact, NotAModel)  # not a model: backfill skips it (registration reads it)
    assert isinstance(classify("models/x/v1/assets/metrics.json", S), SavedModelMember)  # an asset


def test_keras_files_are_single_file_artifacts() -> None:
    assert classify("models/x/2026-11-26/model.keras", S) == KerasFile(
        "models/x/2026-11-26/model.keras"
    )


@pytest.mark.parametrize(
    ("source", "expected", "version"),
    [
        ("models/fraud-detector/v7/", "fraud-detector", "v7"),
        ("models/fraud-detector/v7/model.keras", "fraud-detector", "v7"),
        ("models/churn.keras", "churn", None),
        ("models/Fraud Detector/2026-11-26/m.keras", "Fraud Detector", "2026-11-26"),
    ],
)
def test_display_name_is_the_first_segment_after_the_prefix(
    source: str, expected: str, version: str | None
) -> None:
    name = display_name_for(source, S)
    assert (name.display_name, name.version_hint) == (expected, version)


def test_model_path_pattern_overrides_the_default_rule() -> None:
    settings = make_settings(
        model_path_pattern=re.compile(
            r"^models/team-[^/]+/(?P<model>[^/]+)/"
            r"(?P<version>[^/]+)/"
        ),
    )
    name = display_name_for("models/team-a/scorer/v3/model.keras", settings)
    assert (name.display_name, name.version_hint) == ("scorer", "v3")
    with pytest.raises(PermanentError, match="MODEL_PATH_PATTERN"):
        display_name_for("models/loose.keras", settings)


def test_names_vertex_would_refuse_are_rejected_not_mangled() -> None:
    with pytest.raises(PermanentError, match="129 characters") as info:
        display_name_for(f"models/{'a' * 129}/v1/model.keras", S)
    assert info.value.code == "bad_display_name"


# ---- the flat-upload stem rule (README "Display name"; layout.STEM_VERSION) --------------------
STEM_TABLE = [
    # object under models/               display name      version hint
    ("my_model_v1.keras", "my_model", "v1"),
    ("my_model_v2.keras", "my_model", "v2"),
    ("my-model-v2.keras", "my-model", "v2"),
    ("my_model.v3.keras", "my_model", "v3"),
    ("my_model_V4.keras", "my_model", "V4"),
    ("my_model_v1.2.keras", "my_model", "v1.2"),
    ("my_model_2026-11-26.keras", "my_model", "2026-11-26"),
    ("my_model-20261126.keras", "my_model", "20261126"),
    ("my_model@4.keras", "my_model", "4"),
    ("my_model@v4.keras", "my_model", "v4"),
    ("my_model@rc-1.keras", "my_model", "rc-1"),
    ("my_model_v1/", "my_model", "v1"),  # a SavedModel folder directly under the prefix
    # names that merely end in digits, or in something version-like, are not cut
    ("resnet50.keras", "resnet50", None),
    ("bert-base.keras", "bert-base", None),
    ("resnet-50.keras", "resnet-50", None),
    ("gpt-2.keras", "gpt-2", None),
    ("llama-3.1.keras", "llama-3.1", None),
    ("yolov8.keras", "yolov8", None),
    ("model_2026-13-01.keras", "model_2026-13-01", None),  # not a date
    ("my_model__v1.keras", "my_model__v1", None),  # the name would end with a separator
    ("v1.keras", "v1", None),  # nothing would be left
    ("churn.keras", "churn", None),
    ("churn/", "churn", None),
]


@pytest.mark.parametrize(("leaf", "expected", "version"), STEM_TABLE)
def test_a_flat_uploads_stem_loses_a_trailing_version_token(
    leaf: str, expected: str, version: str | None
) -> None:
    name = display_name_for(f"models/{leaf}", S)
    assert (name.display_name, name.version_hint, name.named_by) == (expected, version, "path")


def test_the_tutorials_two_files_name_one_model() -> None:
    first = display_name_for("models/my_model_v1.keras", S)
    second = display_name_for("models/my_model_v2.keras", S)
    assert first.display_name == second.display_name == "my_model"
    assert (first.version_hint, second.version_hint) == ("v1", "v2")


def test_folders_are_not_cut_only_flat_stems_are() -> None:
    name = display_name_for("models/my_model_v1/2026-11-26/model.keras", S)
    assert (name.display_name, name.version_hint) == ("my_model_v1", "2026-11-26")


def test_custom_metadata_display_name_wins_over_the_path() -> None:
    meta = {"display_name": "MyAwesomeModel", "description": "x"}
    flat = display_name_for("models/my_model_v2.keras", S, meta)
    assert (flat.display_name, flat.version_hint, flat.named_by) == (
        "MyAwesomeModel",
        "v2",
        "metadata",
    )
    nested = display_name_for("models/ranker/v7/", S, meta)
    assert (nested.display_name, nested.version_hint) == ("MyAwesomeModel", "v7")
    assert display_name_for("models/ranker/v7/", S, {"aliases": "x"}).display_name == "ranker"


@pytest.mark.parametrize(
    ("value", "why"),
    [("", "empty"), (" padded", "whitespace"), ("a\tb", "control"), ("x" * 129, "129 characters")],
)
def test_custom_metadata_display_name_is_validated_like_every_name(value: str, why: str) -> None:
    with pytest.raises(PermanentError, match=why) as info:
        display_name_for("models/my_model_v1.keras", S, {"display_name": value})
    assert info.value.code == "bad_display_name"
    assert "custom metadata 'display_name'" in str(info.value)


def test_model_path_pattern_overrides_metadata_too() -> None:
    settings = make_settings(
        model_path_pattern=re.compile(r"^models/(?P<model>[^/]+)/(?P<version>[^/]+)/"),
    )
    name = display_name_for("models/scorer/v3/model.keras", settings, {"display_name": "Other"})
    assert (name.display_name, name.version_hint, name.named_by) == ("scorer", "v3", "pattern")


# The MODEL_PATH_PATTERN the CHANGELOG gives to keep the naming of releases before the stem rule.
PREVIOUS_RULE = r"^models/(?P<model>[^/]+?)(?:(?i:\.keras)$|/$|/(?P<version>[^/]+)/|/[^/]+$)"


@pytest.mark.parametrize(
    ("source", "expected", "version"),
    [
        ("models/my_model_v1.keras", "my_model_v1", None),
        ("models/my_model.v3.keras", "my_model.v3", None),
        ("models/my_model_v1/", "my_model_v1", None),
        ("models/churn.keras", "churn", None),
        ("models/churn/model.keras", "churn", None),
        ("models/fraud-detector/v7/", "fraud-detector", "v7"),
        ("models/fraud-detector/v7/model.keras", "fraud-detector", "v7"),
        ("models/x/a/b/", "x", "a"),
    ],
)
def test_the_changelogs_pattern_restores_the_previous_naming(
    source: str, expected: str, version: str | None
) -> None:
    settings = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "test-project", "MODEL_PATH_PATTERN": PREVIOUS_RULE}
    )
    name = display_name_for(source, settings)
    assert (name.display_name, name.version_hint) == (expected, version)
