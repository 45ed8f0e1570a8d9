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

S = Settings(project="test-project")


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
        ("models/x/metrics.json", "neither"),
        ("models/x/model.h5", "legacy HDF5"),
        ("models/x/v1/", "folder"),
        ("models/gcloud/tmp/parallel_composite_uploads/see_gcloud/abc", "composite"),
    ],
)
def test_non_models_are_ignored_with_a_reason(name: str, why: str) -> None:
    artifact = classify(name, S)
    assert isinstance(artifact, NotAModel) and why in artifact.reason


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
    settings = Settings(
        project="test-project",
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
