"""Hostile uploads aimed at the function process itself (not the sandbox), delivered over HTTP
to a real functions-framework server against fake-gcs-server and the Vertex emulator.

Each attack is built from scratch here (tests/validation/scan/hostile_files.py, real TF models
from tests/modelfactory.py where a valid model is needed) and must end as a recorded rejection
with its own reason code, 2xx, nothing registered, nothing written outside the upload's work
directory, and the server alive with its memory bounded (peak RSS of the function's processes,
VmHWM, reset before each attack). A canary in the function's environment and one in a file on
disk must appear in no bucket object, record or log line afterwards.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from dev import stack
from dev.bridge import binary_event
from handlers.gcs.objects import ObjectInfo, ObjectStore
from handlers.pipeline import Pipeline
from handlers.settings import Settings
from handlers.validation.scan.proto import message
from tests.conftest import Bucket, Models, Services, Vertex, function_env
from tests.validation import corpus
from tests.validation.scan import hostile_files as hostile

MiB = 1024**2
# What one attack may add to the function's peak memory over the warm instance's: the largest
# hostile file here (63 MB) held twice, plus slack. Parsed without limits, the same files cost
# 0.2 GiB (the 63 MiB config.json) to more than 4 GiB (the variables.index bomb) in a bare
# Python process; with the limits the function's peak rose by at most ~60 MiB.
ATTACK_BUDGET_MIB = 160
MEASURED: dict[str, dict[str, float]] = {}


@dataclass
class Server:
    url: str
    service: stack.Service
    log: Path
    temp: Path  # TEMP_DIR: every upload's work directory is created inside it
    outside: Path  # TEMP_DIR's parent: where '../' names would land
    canaries: tuple[str, str]  # (environment value, file content)
    canary_file: Path
    baseline_peak_mib: float = 0.0
    seen_names: list[str] = field(default_factory=list)

    def processes(self) -> list[psutil.Process]:
        """The function's processes (functions-framework and its server worker), not the
        sandboxed TF worker, whose memory is limited by its own RLIMIT_AS."""
        root = psutil.Process(self.service.proc.pid)
        return [
            p
            for p in [root, *root.children(recursive=True)]
            if any("functions-framework" in part for part in p.cmdline())
        ]

    def reset_peaks(self) -> None:
        for proc in self.processes():
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # resets VmHWM to VmRSS

    def peak_mib(self) -> float:
        peaks = []
        for proc in self.processes():
            status = Path(f"/proc/{proc.pid}/status").read_text()
            line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
            peaks.append(int(line.split()[1]) / 1024)
        return max(peaks)

    def rss_mib(self) -> float:
        return max(p.memory_info().rss for p in self.processes()) / MiB

    def post(self, resource: dict[str, Any]) -> int:
        headers, body = binary_event(resource)
        return requests.post(self.url, data=body, headers=headers, timeout=300).status_code

    def alive(self) -> bool:
        unrelated = {"bucket": "b", "name": "elsewhere/x.txt", "generation": "1"}
        return self.service.proc.poll() is None and self.post(unrelated) == 200


@pytest.fixture(scope="module")
def bucket(services: Services) -> Bucket:
    return Bucket(services.storage_url, f"hostile-{os.getpid()}")


@pytest.fixture(scope="module")
def vertex(services: Services) -> Vertex:
    handle = Vertex(services.vertex_url)
    handle.reset()
    return handle


@pytest.fixture(scope="module")
def server(
    services: Services,
    tmp_path_factory: pytest.TempPathFactory,
    bucket: Bucket,
    vertex: Vertex,
    models: Models,
) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("hostile")
    outside = base / "fn"
    temp = outside / "temp"
    temp.mkdir(parents=True)
    canaries = (f"canary-env-{uuid.uuid4().hex}", f"canary-file-{uuid.uuid4().hex}")
    canary_file = base / "canary-secret.txt"
    canary_file.write_text(canaries[1])
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "TEMP_DIR": str(temp),
        "REGISTRAR_TEST_CANARY": canaries[0],
    }
    service = stack.start_function(env, log_dir=base / "logs")
    server = Server(
        service.url, service, base / "logs" / "function.log", temp, outside, canaries, canary_file
    )
    try:
        # Warm the instance the way a real one is after its first model: every import done,
        # the sandbox worker started, one version registered. Attacks are measured from here.
        warm = bucket.upload(models.keras_a, "models/warmup/v1/model.keras")
        assert server.post(warm) == 200
        assert vertex.models("warmup")
        server.baseline_peak_mib = server.peak_mib()
        MEASURED["warm instance"] = {
            "peak_mib": round(server.baseline_peak_mib, 1),
            "rss_mib": round(server.rss_mib(), 1),
        }
        yield server
    finally:
        service.stop()


def _attack(server: Server, name: str, resources: list[dict[str, Any]]) -> None:
    """Deliver every event; each must be acknowledged; measure the function's peak memory."""
    server.reset_peaks()
    before = server.rss_mib()
    for resource in resources:
        assert server.post(resource) == 200, resource["name"]
    peak = server.peak_mib()
    MEASURED[name] = {
        "rss_before_mib": round(before, 1),
        "peak_mib": round(peak, 1),
        "peak_over_warm_mib": round(peak - server.baseline_peak_mib, 1),
    }
    assert server.alive()
    assert peak <= server.baseline_peak_mib + ATTACK_BUDGET_MIB, MEASURED[name]
    # Every upload's work directory was removed (the sandbox worker's own lives on with it).
    assert [p for p in server.temp.iterdir() if not p.name.startswith("registrar-sandbox-")] == []
    assert sorted(p.name for p in server.outside.iterdir()) == ["temp"]  # nothing beside it


def _keras_record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any]:
    name = f"registrar-state/uploads/{resource['name']}/g{resource['generation']}.json"
    return bucket.read_json(name)


def _directory_records(bucket: Bucket, directory: str) -> list[dict[str, Any]]:
    names = bucket.names(f"registrar-state/uploads/{directory}")
    return [bucket.read_json(n) for n in names if n.endswith(".json")]


def _nothing_registered(bucket: Bucket, vertex: Vertex, display_name: str) -> None:
    assert vertex.models(display_name) == []
    assert [n for n in bucket.names("registered/") if f"/{display_name}/" in n] == []


# ---- 1. traversal member names -------------------------------------------------------------


def test_member_names_that_leave_the_directory_are_never_downloaded(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """A valid SavedModel plus `variables/../saved_model.pb` (would overwrite the validated
    graph on disk, and on Vertex's after `gsutil cp -r`) and `variables/../../../../tmp/x.pth`
    (would be written four levels up, outside the work directory)."""
    prefix = "models/traversal/v1/"
    landing = server.outside / "tmp" / "x.pth"  # where ../../../../tmp/x.pth resolves to
    system_tmp_before = Path("/tmp/x.pth").exists()
    bad = [
        bucket.upload_bytes(
            b"graph that was never validated", prefix + "variables/../saved_model.pb"
        ),
        bucket.upload_bytes(b"pwned", prefix + "variables/../../../../tmp/x.pth"),
    ]
    assert {r["name"] for r in bad} <= set(bucket.names(prefix))  # stored verbatim
    good = bucket.upload_dir(models.saved_model, prefix, seed=3)
    _attack(server, "traversal member names", bad + good)
    records = [r for r in _directory_records(bucket, prefix) if r.get("state") != "claimed"]
    assert records and {r["state"] for r in records} == {"rejected"}
    assert {r["reason"]["code"] for r in records} == {"upload.bad_member_name"}
    assert "not downloaded" in records[0]["reason"]["message"]
    assert not landing.exists() and not landing.parent.exists()
    assert Path("/tmp/x.pth").exists() == system_tmp_before
    _nothing_registered(bucket, vertex, "traversal")


# ---- 2. bounded parsing in the function process --------------------------------------------


def test_a_63_mib_config_json_is_rejected_without_being_parsed(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    """Unbounded, reading and json.loads of it take ~200 MiB; the declared size in the central
    directory is refused before a byte of it is read."""
    with zipfile.ZipFile(models.keras_a) as zf:
        config, metadata = json.loads(zf.read("config.json")), json.loads(zf.read("metadata.json"))
        weights = zf.read("model.weights.h5")
    path = hostile.huge_config_keras(tmp_path / "model.keras", config, metadata, weights)
    resource = bucket.upload(path, "models/hugeconfig/v1/model.keras")
    _attack(server, "63 MiB config.json", [resource])
    record = _keras_record(bucket, resource)
    assert record["state"] == "rejected"
    assert record["reason"]["code"] == "keras.config_too_large"
    _nothing_registered(bucket, vertex, "hugeconfig")


def test_a_million_entry_zip_is_rejected_from_its_end_record(
    server: Server, bucket: Bucket, vertex: Vertex
) -> None:
    """A valid Zip64 archive whose central directory has 1,000,000 entries (~50 MB): zipfile
    alone builds a million ZipInfo objects (376 MiB peak, 13 s) before anyone can count them."""
    resource = bucket.upload_bytes(hostile.million_entry_zip(), "models/millionzip/v1/model.keras")
    _attack(server, "million-entry zip", [resource])
    record = _keras_record(bucket, resource)
    assert record["reason"]["code"] == "keras.too_many_members"
    _nothing_registered(bucket, vertex, "millionzip")


def _saved_model_with(bucket: Bucket, models: Models, prefix: str, **replace: bytes) -> list:
    """The real SavedModel's files under `prefix`, some replaced by hostile bytes; in shuffled
    order, as `gcloud storage cp -r` uploads them."""
    files = sorted(p for p in models.saved_model.rglob("*") if p.is_file())
    random.Random(5).shuffle(files)
    resources = []
    for path in files:
        relative = path.relative_to(models.saved_model).as_posix()
        data = replace.get(relative.replace("/", "__").replace(".", "_"))
        if data is None:
            resources.append(bucket.upload(path, prefix + relative))
        else:
            resources.append(bucket.upload_bytes(data, prefix + relative))
    return resources


def test_a_1_mb_variables_index_whose_keys_share_one_huge_prefix_is_rejected(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """~1 MB whose 100,000 entries each decode to the same 500 KB key (prefix compression):
    50 GB of keys if decoded and kept (the previous reader died with MemoryError at 4 GiB)."""
    shards = len(list((models.saved_model / "variables").glob("variables.data-*")))
    bomb = hostile.prefix_bomb_index(key_bytes=500_000, repeats=100_000, num_shards=shards)
    assert len(bomb) < 1_100_000
    prefix = "models/indexbomb/v1/"
    resources = _saved_model_with(bucket, models, prefix, variables__variables_index=bomb)
    _attack(server, "1 MB variables.index prefix bomb", resources)
    records = [r for r in _directory_records(bucket, prefix) if r.get("state") == "rejected"]
    assert {r["reason"]["code"] for r in records} == {"savedmodel.index_too_large"}
    _nothing_registered(bucket, vertex, "indexbomb")


def test_a_graph_of_empty_nodes_is_rejected_before_it_is_parsed(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """30 MB of empty NodeDefs (under the 32 MiB size cap): 15 million messages, 1.1 GiB once
    parsed. The resolve stage reads only the asset names; the scan estimates and refuses."""
    bomb = hostile.empty_node_graph(15_000_000)
    prefix = "models/graphbomb/v1/"
    resources = _saved_model_with(bucket, models, prefix, saved_model_pb=bomb)
    _attack(server, "30 MB empty-node saved_model.pb", resources)
    records = [r for r in _directory_records(bucket, prefix) if r.get("state") == "rejected"]
    assert {r["reason"]["code"] for r in records} == {"savedmodel.graph_too_large"}
    _nothing_registered(bucket, vertex, "graphbomb")


# ---- 3. .keras framing ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["zip_in_front", "trailing_junk", "gap_between_members"])
def test_a_keras_file_that_is_more_than_its_members_is_rejected(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models, variant: str
) -> None:
    original = models.keras_a.read_bytes()
    if variant == "zip_in_front":
        data = hostile.streamed_zip([("run.sh", b"#!/bin/sh\n")]) + original
    elif variant == "trailing_junk":
        data = original + b"<script>polyglot</script>"
    else:
        data = hostile.rezip(hostile.keras_members(models.keras_a), gap_before="model.weights.h5")
    name = f"models/framing-{variant.replace('_', '-')}/v1/model.keras"
    resource = bucket.upload_bytes(data, name)
    _attack(server, f".keras framing: {variant}", [resource])
    assert _keras_record(bucket, resource)["reason"]["code"] == "keras.bad_zip_framing"
    _nothing_registered(bucket, vertex, f"framing-{variant.replace('_', '-')}")


# ---- 4. registered bytes = validated bytes (a pipeline over a store that lies) -------------


def _handle(pipeline: Pipeline, resource: dict[str, Any]) -> Any:
    headers, body = binary_event(resource)
    return pipeline.handle({"type": headers["ce-type"], "id": headers["ce-id"]}, body)


def test_bytes_that_are_not_the_listed_object_are_never_validated(
    services: Services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """The listing (what the upload key, the claim and the record name) says one CRC32C for the
    index; the bytes downloaded at that generation have another: rejected before validation."""

    class LyingListing(ObjectStore):
        def list_objects(self, bucket: str, prefix: str) -> list[ObjectInfo]:
            return [
                dataclasses.replace(o, crc32c="AAAAAA==")
                if o.name.endswith("variables.index")
                else o
                for o in super().list_objects(bucket, prefix)
            ]

    settings = Settings.from_env(function_env(services))
    pipeline = Pipeline(settings, store=LyingListing(settings))
    outcomes = [
        _handle(pipeline, r) for r in bucket.upload_dir(models.saved_model, "models/liar/v1/")
    ]
    [rejected] = [o for o in outcomes if o.outcome == "rejected"]
    assert rejected.fields["reason"] == "upload.digest_mismatch"
    assert "validate" not in rejected.fields["timings"]
    [record] = [
        r for r in _directory_records(bucket, "models/liar/v1/") if r["state"] == "rejected"
    ]
    assert record["reason"]["code"] == "upload.digest_mismatch"
    _nothing_registered(bucket, vertex, "liar")


def test_a_published_copy_that_is_not_the_validated_bytes_is_never_registered(
    services: Services, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    """The server-side copy is pinned to the validated generation; should it still produce other
    bytes (here: a store that copies a decoy), its CRC32C differs from the downloaded bytes'."""
    decoy = bucket.upload(models.keras_b, "models/decoy.bin")

    class SwappingCopy(ObjectStore):
        def copy_object(self, source: ObjectInfo, destination_name: str) -> ObjectInfo:
            other = self.get_object(source.bucket, decoy["name"])
            assert other is not None
            return super().copy_object(other, destination_name)

    settings = Settings.from_env(function_env(services))
    pipeline = Pipeline(settings, store=SwappingCopy(settings))
    resource = bucket.upload(models.keras_a, "models/swapped/v1/model.keras")
    outcome = _handle(pipeline, resource)
    assert outcome.outcome == "rejected" and outcome.fields["reason"] == "upload.digest_mismatch"
    record = _keras_record(bucket, resource)
    assert record["reason"]["code"] == "upload.digest_mismatch"
    assert "validated bytes" in record["reason"]["message"]
    assert vertex.models("swapped") == []
    assert not [n for n in bucket.names("registered/swapped/") if n.endswith("manifest.json")]


# ---- 5. attempts at the canaries, then the canary sweep ------------------------------------


def test_attempts_to_read_the_canary_file_are_rejected(
    server: Server, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    # A .keras whose lookup layer names the canary file as its vocabulary (LFI at load time).
    with zipfile.ZipFile(models.keras_a) as zf:
        config = json.loads(zf.read("config.json"))
    layer = {
        "module": "keras.layers",
        "class_name": "StringLookup",
        "config": {"name": "lookup", "vocabulary": str(server.canary_file)},
        "registered_name": None,
        "name": "lookup",
        "inbound_nodes": [],
    }
    path = corpus.write_keras(tmp_path / "m.keras", corpus.with_layer(config, layer))
    keras_resource = bucket.upload(path, "models/canary-keras/v1/model.keras")
    # A SavedModel whose graph names '../../..'-style asset paths towards the canary file.
    graph = (models.saved_model / "saved_model.pb").read_bytes()
    parsed = message("SavedModel")()
    parsed.ParseFromString(graph)
    asset = parsed.meta_graphs[0].asset_file_def.add()
    asset.filename = os.path.relpath(server.canary_file, server.temp / "x" / "source" / "assets")
    prefix = "models/canary-sm/v1/"
    resources = _saved_model_with(bucket, models, prefix, saved_model_pb=parsed.SerializeToString())
    _attack(server, "canary file attempts", [keras_resource, *resources])
    assert _keras_record(bucket, keras_resource)["reason"]["code"] == "keras.path_argument"
    records = [r for r in _directory_records(bucket, prefix) if r.get("state") == "rejected"]
    assert {r["reason"]["code"] for r in records} == {"savedmodel.bad_asset_name"}
    _nothing_registered(bucket, vertex, "canary-keras")
    _nothing_registered(bucket, vertex, "canary-sm")


def test_object_graphs_that_point_the_loader_at_the_canary_are_rejected(
    server: Server, bucket: Bucket, vertex: Vertex, tmp_path: Path
) -> None:
    """A real table-from-asset export whose graph is untouched but whose object graph (what
    tf.saved_model.load wires) binds the table initializer's file name to a constant holding
    the canary file's absolute path, or to a string variable: without the check, the sandbox's
    load (and every later consumer's) reads the canary."""
    from tests.validation.scan import object_graphs

    cases = {
        "canary-og-const": lambda d: object_graphs.bind_constant(d, str(server.canary_file)),
        "canary-og-var": object_graphs.bind_variable,
    }
    resources, prefixes = [], {}
    for name, rebind in cases.items():
        model = rebind(object_graphs.build(tmp_path / name))
        prefixes[name] = f"models/{name}/v1/"
        resources += bucket.upload_dir(model, prefixes[name], seed=7)
    _attack(server, "object graph re-pointed at the canary", resources)
    for name, prefix in prefixes.items():
        records = [r for r in _directory_records(bucket, prefix) if r.get("state") != "claimed"]
        assert records and {r["state"] for r in records} == {"rejected"}, name
        assert {r["reason"]["code"] for r in records} == {"savedmodel.object_graph_path"}, name
        assert "bound, in the object graph, to" in records[0]["reason"]["message"]
        _nothing_registered(bucket, vertex, name)


def test_the_canaries_appear_nowhere(server: Server, bucket: Bucket, vertex: Vertex) -> None:
    """After every hostile upload above: neither canary in any object (all generations, records
    included) or in the function's log; only the warm-up model is registered."""
    wanted = [c.encode() for c in server.canaries]
    wanted += [base64.b64encode(c.encode()) for c in server.canaries]
    objects = list(bucket.client.list_blobs(bucket.name, versions=True))
    assert len(objects) > 30
    for blob in objects:
        data = bucket.handle.blob(blob.name, generation=blob.generation).download_as_bytes()
        assert not any(w in data for w in wanted), blob.name
        assert not any(w.decode() in blob.name for w in wanted)
    log = server.log.read_bytes()
    assert b'"outcome": "rejected"' in log or b'"outcome":"rejected"' in log
    assert not any(w in log for w in wanted)
    assert sorted(m["displayName"] for m in vertex.models()) == ["warmup"]
    print("\nfunction memory under each attack (MiB):")
    for attack, numbers in MEASURED.items():
        print(f"  {attack}: {numbers}")
