"""`uploads_in`: the one answer to "which uploads does this listing hold" (names only)."""

from __future__ import annotations

from handlers.gcs.objects import ObjectInfo
from handlers.intake.listing import uploads_in
from handlers.settings import Settings

SETTINGS = Settings(project="my-project")


def _objects(*names: str) -> list[ObjectInfo]:
    return [ObjectInfo("b", name, 10 + i) for i, name in enumerate(names)]


def test_keras_files_and_saved_model_roots_announce_their_uploads() -> None:
    listed = uploads_in(
        _objects(
            "models/a/v1/model.keras",
            "models/b/v1/saved_model.pbtxt",
            "models/b/v1/saved_model.pb",
            "models/b/v1/variables/variables.index",
            "models/b/v1/fingerprint.pb",
            "models/a/v1/metrics.json",
            "models/a/v1/",
            "models/c/v1/model.h5",
        ),
        SETTINGS,
    )
    assert [o.name for o in listed.keras] == ["models/a/v1/model.keras"]
    # saved_model.pb is preferred over the .pbtxt, whichever is listed first
    assert {d: o.name for d, o in listed.saved_models.items()} == {
        "models/b/v1/": "models/b/v1/saved_model.pb"
    }
    assert [o.name for o in listed.announcing] == [
        "models/a/v1/model.keras",
        "models/b/v1/saved_model.pb",
    ]
    assert listed.incomplete == []
    # folder placeholders are left out silently; other non-models are named with the reason
    assert [(o.name, "HDF5" in why) for o, why in listed.not_models] == [
        ("models/a/v1/metrics.json", False),
        ("models/c/v1/model.h5", True),
    ]


def test_saved_model_files_without_a_graph_are_an_incomplete_upload() -> None:
    listed = uploads_in(
        _objects("models/d/v1/variables/variables.index", "models/d/v1/assets/vocab.txt"),
        SETTINGS,
    )
    assert listed.saved_models == {} and listed.incomplete == ["models/d/v1/"]


def test_directly_in_keeps_only_the_uploads_rooted_in_that_directory() -> None:
    listed = uploads_in(
        _objects(
            "models/e/v1/model.keras",
            "models/e/v1/sub/other.keras",
            "models/e/v1/saved_model.pb",
            "models/e/v1/nested/saved_model.pb",
        ),
        SETTINGS,
    ).directly_in("models/e/v1/")
    assert [o.name for o in listed.keras] == ["models/e/v1/model.keras"]
    assert list(listed.saved_models) == ["models/e/v1/"]
