"""One alias rule, applied when the upload's metadata is read: before anything is downloaded.

`default` is decided by DEFAULT_VERSION_POLICY (or the promotion gate), never by metadata: an
upload that asks for it is a recorded rejection that never reaches download, the sandbox, publish
or Vertex. Driven over HTTP through functions-framework, like every integration test.
"""

from __future__ import annotations

import pytest

from tests.conftest import Bucket, Models, Vertex, deliver


def _record(bucket: Bucket, source: str) -> dict:
    [name] = [n for n in bucket.names(f"registrar-state/uploads/{source}/") if n.endswith(".json")]
    return bucket.read_json(name)


@pytest.mark.parametrize("aliases", ["default", "candidate,default", " default "])
def test_metadata_aliases_default_is_refused_before_any_download(
    function_client, bucket: Bucket, vertex: Vertex, models: Models, aliases: str
) -> None:
    source = "models/aliased/v1/model.keras"
    resource = bucket.upload(models.keras_a, source, metadata={"aliases": aliases})
    assert deliver(function_client, resource) == 200  # a rejection is acknowledged

    record = _record(bucket, source)
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == "bad_alias"
    assert "'default'" in record["reason"]["message"]
    assert "DEFAULT_VERSION_POLICY" in record["reason"]["message"]
    assert "download" not in record["timings"] and "validate" not in record["timings"]
    assert "publish" not in record["timings"] and "register" not in record["timings"]
    assert vertex.models() == [] and bucket.names("registered/") == []


def test_other_metadata_aliases_still_register(
    function_client, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    source = "models/aliased-ok/v1/model.keras"
    resource = bucket.upload(models.keras_a, source, metadata={"aliases": "candidate"})
    assert deliver(function_client, resource) == 200
    record = _record(bucket, source)
    assert record["state"] == "registered" and "validate" in record["timings"]
    [model] = vertex.models("aliased-ok")
    [version] = vertex.versions(model["name"])
    assert set(version["versionAliases"]) == {"default", "candidate"}
