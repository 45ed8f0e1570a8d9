"""Documented filter forms only, and model labels merged into every version (through the SDK).

Sources: `ListModelsRequest.filter` / `ListModelVersionsRequest.filter` (aiplatform_v1
`types/model_service.py`) and `UpdateModelRequest.model` ("Both the model labels and the version
labels are merged when a model is returned").
"""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as api

from tests.emulators.helpers import IMAGE, name, upload

UPLOAD_KEY = "registrar-upload-key"


def _status(exc: api.GoogleAPICallError) -> str:
    return exc.response.json()["error"]["status"]


def _versions(gapic: Any, model: str, expression: str) -> list[str]:
    request = {"name": model, "filter": expression}
    return [m.version_id for m in gapic.list_model_versions(request=request)]


# ---- filters -----------------------------------------------------------------------------------


def test_the_quoted_key_form_finds_a_hyphenated_label(gapic: Any) -> None:
    first = upload(gapic, model_id="churn", labels={UPLOAD_KEY: "k1"})
    upload(gapic, parent_model=first.model, labels={UPLOAD_KEY: "k2"})
    assert _versions(gapic, first.model, f'labels."{UPLOAD_KEY}"="k2"') == ["2"]
    assert _versions(gapic, first.model, f'labels."{UPLOAD_KEY}":*') == ["1", "2"]
    assert _versions(gapic, first.model, f'labels:"{UPLOAD_KEY}"') == ["1", "2"]
    assert _versions(gapic, first.model, 'labels."a key"="x"') == []  # documented, matches none


@pytest.mark.parametrize(
    ("expression", "suggestion"),
    [
        (f'labels.{UPLOAD_KEY}="k1"', f'labels."{UPLOAD_KEY}"="k1"'),
        (f"labels.{UPLOAD_KEY}:*", f'labels."{UPLOAD_KEY}":*'),
        (f"labels:{UPLOAD_KEY}", f'labels:"{UPLOAD_KEY}"'),
    ],
)
def test_an_unquoted_hyphenated_key_is_refused_with_the_quoted_form(
    aip: Any, gapic: Any, expression: str, suggestion: str
) -> None:
    first = upload(gapic, model_id="churn", labels={UPLOAD_KEY: "k1"})
    with pytest.raises(api.BadRequest) as caught:
        list(gapic.list_model_versions(request={"name": first.model, "filter": expression}))
    assert _status(caught.value) == "INVALID_ARGUMENT"
    assert suggestion in caught.value.message
    with pytest.raises(api.BadRequest, match="Quote the key"):
        aip.Model.list(filter=expression)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ('labels.team!="x"', "'!=' is documented for model and display_name"),
        ("labels.team=risk-a", 'quote it: "risk-a"'),
        ("model=churn-a", 'quote it: "churn-a"'),
        ('labels.team="x" OR labels.team="y"', "expected e.g."),
        ('NOT labels.team="x"', "expected e.g."),
    ],
)
def test_undocumented_forms_are_refused(aip: Any, expression: str, why: str) -> None:
    with pytest.raises(api.BadRequest) as caught:
        aip.Model.list(filter=expression)
    assert why in caught.value.message
    assert _status(caught.value) == "INVALID_ARGUMENT"


def test_documented_forms_still_work(aip: Any) -> None:
    for model_id, team in [("a1", "x"), ("a2", "y")]:
        aip.Model.upload(
            display_name="alpha",
            model_id=model_id,
            serving_container_image_uri=IMAGE,
            labels={"team": team, "tier": "gold"},
        )

    def ids(expression: str) -> list[str]:
        return sorted(m.name for m in aip.Model.list(filter=expression))

    assert ids("labels.team=x") == ["a1"]  # `labels.key=value`, unquoted simple value
    assert ids('labels.team="y"') == ["a2"]
    assert ids("labels.team:*") == ["a1", "a2"]
    assert ids("labels:tier") == ["a1", "a2"]
    assert ids('labels.tier="gold" AND model!=a1') == ["a2"]
    assert ids('model="a1"') == ["a1"]
    assert ids("labels:absent") == []


# ---- merged labels -----------------------------------------------------------------------------


def test_model_labels_are_merged_into_every_version(gapic: Any) -> None:
    first = upload(gapic, model_id="churn", labels={"team": "risk", UPLOAD_KEY: "k1"})
    upload(gapic, parent_model=first.model, labels={UPLOAD_KEY: "k2", "stage": "canary"})
    upload(gapic, parent_model=first.model)  # no labels of its own

    assert dict(gapic.get_model(name=f"{first.model}@1").labels) == {
        "team": "risk",
        UPLOAD_KEY: "k1",
    }
    # version 2: the model's `team` merged in, its own upload key wins over the model's
    assert dict(gapic.get_model(name=f"{first.model}@2").labels) == {
        "team": "risk",
        UPLOAD_KEY: "k2",
        "stage": "canary",
    }
    # version 3 set no labels, yet it carries the model's, including the first upload's key
    assert dict(gapic.get_model(name=f"{first.model}@3").labels) == {
        "team": "risk",
        UPLOAD_KEY: "k1",
    }
    listed = {m.version_id: dict(m.labels) for m in gapic.list_model_versions(name=first.model)}
    assert listed["2"] == {"team": "risk", UPLOAD_KEY: "k2", "stage": "canary"}
    assert listed["3"] == {"team": "risk", UPLOAD_KEY: "k1"}


def test_filters_match_the_merged_labels(gapic: Any) -> None:
    first = upload(gapic, model_id="churn", labels={"team": "risk", UPLOAD_KEY: "k1"})
    upload(gapic, parent_model=first.model, labels={UPLOAD_KEY: "k2"})
    upload(gapic, parent_model=first.model)
    assert _versions(gapic, first.model, 'labels.team="risk"') == ["1", "2", "3"]
    # a version that did not set the key inherits the model's: the lookup finds it too
    assert _versions(gapic, first.model, f'labels."{UPLOAD_KEY}"="k1"') == ["1", "3"]
    assert _versions(gapic, first.model, f'labels."{UPLOAD_KEY}"="k2"') == ["2"]


def test_list_models_and_the_sdk_show_merged_labels(aip: Any, gapic: Any) -> None:
    first = upload(gapic, model_id="churn", labels={"team": "risk"})
    upload(gapic, parent_model=first.model, labels={"stage": "new"}, version_aliases=["default"])
    (listed,) = aip.Model.list(filter='labels.team="risk" AND labels.stage="new"')
    assert listed.version_id == "2"
    assert listed.labels == {"team": "risk", "stage": "new"}
    assert aip.Model(name("churn"), version="2").labels == {"team": "risk", "stage": "new"}
