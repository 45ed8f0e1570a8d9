"""uploads: refusals from object metadata before any download, and saved_model.pb read and
parsed once per generation while a directory's member events arrive."""

from __future__ import annotations

import pytest

from handlers.errors import Rejected, Waiting
from handlers.gcs.objects import ObjectInfo
from handlers.intake import uploads
from handlers.intake.events import ObjectEvent
from handlers.limits import MAX_GRAPH_BYTES, MAX_INDEX_BYTES
from handlers.validation.scan.proto import message
from handlers.validation.scan.savedmodel import parse_asset_names
from tests.conftest import make_settings

DIR = "models/m/v1/"
SETTINGS = make_settings()


def _info(relative: str, size: int = 10, generation: int = 1) -> ObjectInfo:
    return ObjectInfo("b", DIR + relative, generation, size)


def _upload(**sizes: int) -> uploads.Upload:
    members = {
        "saved_model.pb": 100,
        "variables/variables.index": 100,
        "variables/variables.data-00000-of-00001": 100,
        **{k.replace("__", "/"): v for k, v in sizes.items()},
    }
    infos = tuple(_info(rel, size) for rel, size in sorted(members.items()))
    return uploads.Upload("saved_model", "b", DIR, infos, None)  # type: ignore[arg-type]


def test_graph_file_over_its_cap_is_refused_from_metadata() -> None:
    upload = _upload(**{"saved_model.pb": MAX_GRAPH_BYTES + 1})
    with pytest.raises(Rejected) as err:
        uploads.check_size(upload, SETTINGS)
    assert err.value.code == "savedmodel.graph_too_large"
    assert "Nothing was downloaded" in str(err.value)


def test_index_over_its_cap_is_refused_from_metadata() -> None:
    upload = _upload(**{"variables__variables.index": MAX_INDEX_BYTES + 1})
    with pytest.raises(Rejected) as err:
        uploads.check_size(upload, SETTINGS)
    assert err.value.code == "savedmodel.index_too_large"


def test_files_within_their_caps_pass() -> None:
    uploads.check_size(_upload(**{"saved_model.pb": MAX_GRAPH_BYTES}), SETTINGS)


def _graph_with_assets(*names: str) -> bytes:
    model = message("SavedModel")()
    meta = model.meta_graphs.add()
    for name in names:
        meta.asset_file_def.add().filename = name
    node = meta.graph_def.node.add()
    node.name, node.op = "x", "Placeholder"
    return model.SerializeToString()


class CountingStore:
    def __init__(self, graph: bytes) -> None:
        self.graph = graph
        self.reads = 0

    def read_object(self, obj: ObjectInfo) -> bytes:
        self.reads += 1
        return self.graph


def test_the_graph_is_read_and_parsed_once_per_generation_across_member_events() -> None:
    graph = _graph_with_assets("vocab.txt")
    store = CountingStore(graph)
    listing = [
        _info("saved_model.pb", len(graph), generation=77),
        _info("variables/variables.index"),
        _info("variables/variables.data-00000-of-00001"),
    ]
    event = ObjectEvent(bucket="b", name=DIR + "saved_model.pb", generation=77)
    for _ in range(5):  # five member events / redeliveries before the asset arrives
        with pytest.raises(Waiting, match=r"vocab\.txt"):
            uploads._check_assets(DIR, listing, event, store, parse_asset_names)  # type: ignore[arg-type]
    uploads._check_assets(
        DIR, [*listing, _info("assets/vocab.txt")], event, store, parse_asset_names
    )  # type: ignore[arg-type]
    assert store.reads == 1
    # A new generation of saved_model.pb is a new graph: read again.
    listing[0] = _info("saved_model.pb", len(graph), generation=78)
    with pytest.raises(Waiting):
        uploads._check_assets(DIR, listing, event, store, parse_asset_names)  # type: ignore[arg-type]
    assert store.reads == 2


def test_a_graph_over_the_cap_is_not_read_while_resolving() -> None:
    store = CountingStore(b"")
    listing = [_info("saved_model.pb", MAX_GRAPH_BYTES + 1, generation=5)]
    event = ObjectEvent(bucket="b", name=DIR + "saved_model.pb", generation=5)
    uploads._check_assets(DIR, listing, event, store, parse_asset_names)  # type: ignore[arg-type]
    assert store.reads == 0  # check_size refuses it after the claim, with a record


def test_an_asset_name_that_can_never_arrive_is_not_waited_for() -> None:
    """'../../etc/passwd' can never be a member: the upload goes on to validation, which rejects
    it (savedmodel.bad_asset_name), instead of waiting forever without a record."""
    graph = _graph_with_assets("../../canary-secret.txt")
    listing = [
        _info("saved_model.pb", len(graph), generation=90),
        _info("variables/variables.index"),
        _info("variables/variables.data-00000-of-00001"),
    ]
    event = ObjectEvent(bucket="b", name=DIR + "saved_model.pb", generation=90)
    uploads._check_assets(DIR, listing, event, CountingStore(graph), parse_asset_names)  # type: ignore[arg-type]
