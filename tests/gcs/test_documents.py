"""The one JSON-document-with-generation helper under the upload records and the gate's ledger."""

from __future__ import annotations

import pytest

from handlers.gcs.documents import read_document, write_document
from handlers.gcs.objects import ObjectStore, PreconditionFailed
from handlers.settings import Settings
from tests.conftest import PROJECT, Bucket


def _store(bucket: Bucket) -> ObjectStore:
    return ObjectStore(Settings(project=PROJECT, storage_emulator_host=bucket.storage_url))


def test_a_document_round_trips_with_its_generation_and_one_writer_wins(bucket: Bucket) -> None:
    store = _store(bucket)
    assert read_document(store, bucket.name, "state/doc.json", corrupt={}) is None
    first = write_document(store, bucket.name, "state/doc.json", {"b": 1, "a": [1]},
                           if_generation_match=0)  # fmt: skip
    assert read_document(store, bucket.name, "state/doc.json", corrupt={}) == (
        {"a": [1], "b": 1},
        first,
    )
    second = write_document(store, bucket.name, "state/doc.json", {"b": 2},
                            if_generation_match=first)  # fmt: skip
    with pytest.raises(PreconditionFailed):  # a writer that read `first` lost the race
        write_document(store, bucket.name, "state/doc.json", {"b": 3}, if_generation_match=first)
    with pytest.raises(PreconditionFailed):  # create-only
        write_document(store, bucket.name, "state/doc.json", {"b": 3}, if_generation_match=0)
    assert read_document(store, bucket.name, "state/doc.json", corrupt={}) == ({"b": 2}, second)
    text = bucket.handle.blob("state/doc.json").download_as_text()
    assert text.startswith("{\n  ")  # indented: people read records in the console


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_a_document_that_is_not_a_json_object_reads_as_the_callers_corrupt_value(
    bucket: Bucket, data: bytes
) -> None:
    store = _store(bucket)
    bucket.upload_bytes(data, "state/bad.json")
    marker = {"state": "corrupt"}
    doc, generation = read_document(store, bucket.name, "state/bad.json", corrupt=marker) or ({}, 0)
    assert doc == marker and doc is not marker and generation > 0
