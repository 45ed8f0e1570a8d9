"""Evaluation-gated promotion end to end: a real functions-framework server with
PROMOTION_METRIC=auc, fake-gcs-server and the Vertex emulator, events delivered over HTTP (a non-2xx
answer is redelivered, as the platform does)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from dev import stack
from tests.conftest import Bucket, Models, Vertex, function_env
from tests.conftest import deliver_until_acked as deliver

STATE = "registrar-state/uploads/"


@pytest.fixture(scope="module")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gated-server")


@pytest.fixture(scope="module")
def server(services: Any, server_logs: Path) -> Iterator[str]:
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "THREADS": "8",
        "PROMOTION_METRIC": "auc",
    }
    service = stack.start_function(env, log_dir=server_logs)
    yield service.url
    service.stop()


@pytest.fixture(scope="module")
def second_server(services: Any, server_logs: Path) -> Iterator[str]:
    """Another instance of the same function: two instances race for real (own sandbox each)."""
    env = {
        **stack.function_env(services.storage_url, services.vertex_url),
        **function_env(services),
        "PROMOTION_METRIC": "auc",
    }
    service = stack.start_function(env, log_dir=server_logs / "second")
    yield service.url
    service.stop()


def metrics(bucket: Bucket, name: str, values: Any) -> dict[str, Any]:
    data = values if isinstance(values, bytes) else json.dumps(values).encode()
    return bucket.upload_bytes(data, name)


def aliases(vertex: Vertex, display_name: str) -> dict[str, set[str]]:
    [model] = vertex.models(display_name)
    return {
        v["versionId"]: set(v.get("versionAliases", [])) for v in vertex.versions(model["name"])
    }


def evaluations(vertex: Vertex, display_name: str, version_id: str) -> list[dict[str, Any]]:
    [model] = vertex.models(display_name)
    url = f"{vertex.url}/v1/{model['name']}@{version_id}/evaluations"
    reply = requests.get(url, timeout=5)
    reply.raise_for_status()
    return reply.json().get("modelEvaluations", [])


def keras_record(bucket: Bucket, resource: dict[str, Any]) -> dict[str, Any]:
    return bucket.read_json(f"{STATE}{resource['name']}/g{resource['generation']}.json")


def test_gated_promotion_late_metrics_and_redelivery(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    events: list[dict[str, Any]] = []
    # v1: its metrics.json arrives first (nothing to attach to yet), then the model -> default
    m1 = metrics(bucket, "models/churn/v1/metrics.json", {"auc": 0.80, "accuracy": 0.9})
    deliver(server, m1)
    v1 = bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    deliver(server, v1)
    events += [m1, v1]
    assert aliases(vertex, "churn") == {"1": {"default"}}
    record = keras_record(bucket, v1)
    assert record["metrics"]["state"] == "attached" and record["metrics"]["values"]["auc"] == 0.80
    assert record["gate"]["decision"] == "promoted"
    [evaluation] = evaluations(vertex, "churn", "1")
    assert evaluation["metricsSchemaUri"].endswith("/classification_metrics_1.0.0.yaml")
    assert evaluation["metrics"] == {"auRoc": 0.8}
    assert evaluation["metadata"]["metrics"] == {"auc": 0.8, "accuracy": 0.9}

    # v2: worse, metrics in the model object's own metadata -> registered, held as challenger
    v2 = bucket.upload(models.keras_b, "models/churn/v2/model.keras", {"metrics": '{"auc": 0.75}'})
    deliver(server, v2)
    events.append(v2)
    assert aliases(vertex, "churn") == {"1": {"default"}, "2": {"challenger"}}
    gate = keras_record(bucket, v2)["gate"]
    assert gate["decision"] == "held" and gate["metric"] == "auc"
    assert (
        gate["value"] == 0.75 and gate["default_value"] == 0.80 and gate["default_version"] == "1"
    )
    assert "does not beat" in gate["reason"]
    [model] = vertex.models("churn")
    labels = vertex.versions(model["name"])[1]["labels"]
    assert labels["gate-metric"] == "auc" and labels["gate-metric-value"] == "0p75"

    # v3: no metrics yet -> challenger (moved from v2); then its metrics.json (0.90) -> default
    v3 = bucket.upload(models.keras_a, "models/churn/v3/model.keras")
    deliver(server, v3)
    events.append(v3)
    assert aliases(vertex, "churn") == {"1": {"default"}, "2": set(), "3": {"challenger"}}
    assert keras_record(bucket, v3)["gate"]["value"] is None
    assert vertex.versions(model["name"])[2]["labels"]["gate-metric-value"] == "none"
    m3 = metrics(bucket, "models/churn/v3/metrics.json", {"auc": 0.90})
    deliver(server, m3)
    events.append(m3)
    assert aliases(vertex, "churn") == {"1": set(), "2": set(), "3": {"default"}}
    assert len(evaluations(vertex, "churn", "3")) == 1
    record = keras_record(bucket, v3)
    assert record["metrics"]["generation"] == int(m3["generation"])
    assert record["gate"]["decision"] == "promoted" and record["gate"]["default_version"] == "1"
    own = bucket.read_json(f"{STATE}models/churn/v3/metrics.json/g{m3['generation']}.json")
    assert own["state"] == "attached" and own["uploads"][0]["result"] == "attached"

    # the same events again, in reverse and shuffled order: nothing changes
    before = aliases(vertex, "churn")
    counts = {v: len(evaluations(vertex, "churn", v)) for v in before}
    ledger = bucket.read_json("registrar-state/gate/churn.json")
    for order in (events[::-1], random.Random(3).sample(events, len(events))):
        for resource in order:
            deliver(server, resource)
    assert aliases(vertex, "churn") == before
    assert {v: len(evaluations(vertex, "churn", v)) for v in before} == counts
    assert bucket.read_json("registrar-state/gate/churn.json")["history"] == ledger["history"]

    # an older generation of v3's metrics.json, delivered after the newer one, changes nothing
    newer = metrics(bucket, "models/churn/v3/metrics.json", {"auc": 0.70})
    deliver(server, m3, event_id="late-copy-of-the-old-generation")
    assert aliases(vertex, "churn") == before
    # ... while the newer generation is imported and decided (v3 is default: it keeps it)
    deliver(server, newer)
    assert aliases(vertex, "churn") == before
    assert len(evaluations(vertex, "churn", "3")) == 2
    assert keras_record(bucket, v3)["metrics"]["values"] == {"auc": 0.70}


def test_two_racing_uploads_end_with_default_on_the_better_one(
    server: str, second_server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    base = bucket.upload(models.keras_a, "models/racer/v1/model.keras", {"metrics": '{"auc": 0.5}'})
    deliver(server, base)
    worse = bucket.upload(models.keras_b, "models/racer/a/model.keras", {"metrics": '{"auc": 0.7}'})
    better = bucket.upload(
        models.keras_a, "models/racer/b/model.keras", {"metrics": '{"auc": 0.9}'}
    )
    # slow alias moves widen the window in which a decider could act on a stale default
    slow = {"method": "MergeVersionAliases", "latency_ms": 300}
    requests.post(f"{vertex.url}/_emulator/faults", json=slow, timeout=5).raise_for_status()
    try:
        with ThreadPoolExecutor(4) as pool:  # each event twice, on two instances, all at once
            jobs = [(server, worse), (second_server, better), (second_server, worse),
                    (server, better)]  # fmt: skip
            list(pool.map(lambda job: deliver(*job), jobs))
    finally:
        vertex.clear_faults()
    found = aliases(vertex, "racer")
    assert len(found) == 3
    holder = next(v for v, a in found.items() if "default" in a)
    record = keras_record(bucket, better)
    assert record["version_id"] == holder
    assert keras_record(bucket, worse)["gate"]["decision"] in ("held", "promoted")


def test_bad_metrics_are_rejected_on_their_own_and_the_model_is_registered(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    bad = metrics(bucket, "models/scored/v1/metrics.json", b'{"auc": NaN}')
    model = bucket.upload(models.keras_a, "models/scored/v1/model.keras")
    deliver(server, bad)  # the model has no record yet: the metrics are rejected on their own
    deliver(server, model)
    assert aliases(vertex, "scored") == {"1": {"default"}}  # the first version is always default
    record = keras_record(bucket, model)
    assert record["state"] == "registered"
    assert record["metrics"]["state"] == "rejected"
    assert record["metrics"]["reason"]["code"] == "metrics.not_finite"
    assert record["gate"]["decision"] == "held" and "metrics.not_finite" in record["gate"]["reason"]
    own = bucket.read_json(f"{STATE}models/scored/v1/metrics.json/g{bad['generation']}.json")
    assert own["state"] == "rejected" and own["reason"]["code"] == "metrics.not_finite"
    assert evaluations(vertex, "scored", "1") == []

    # bad metadata metrics on a second version: the version is registered, held, reason recorded
    v2 = bucket.upload(models.keras_b, "models/scored/v2/model.keras", {"metrics": "[0.9]"})
    deliver(server, v2)
    assert aliases(vertex, "scored") == {"1": {"default"}, "2": {"challenger"}}
    assert keras_record(bucket, v2)["metrics"]["reason"]["code"] == "metrics.not_an_object"

    # a late bad metrics.json for a registered version: rejected, the version untouched
    late = metrics(bucket, "models/scored/v2/metrics.json", b"x" * (256 * 1024 + 1))
    deliver(server, late)
    own = bucket.read_json(f"{STATE}models/scored/v2/metrics.json/g{late['generation']}.json")
    assert own["reason"]["code"] == "metrics.too_large"
    assert aliases(vertex, "scored") == {"1": {"default"}, "2": {"challenger"}}


def test_savedmodel_with_metrics_json_among_its_files(
    server: str, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    first = bucket.upload(
        models.keras_a, "models/ranker/v1/model.keras", {"metrics": '{"auc": 0.6}'}
    )
    deliver(server, first)
    resources = bucket.upload_dir(models.saved_model, "models/ranker/v2/", seed=5)
    resources.insert(2, metrics(bucket, "models/ranker/v2/metrics.json", {"auc": 0.7}))
    for resource in resources:  # metrics.json somewhere in the middle of the directory's events
        deliver(server, resource)
    assert aliases(vertex, "ranker") == {"1": set(), "2": {"default"}}
    [record_name] = [n for n in bucket.names(f"{STATE}models/ranker/v2/") if "/members-" in n]
    record = bucket.read_json(record_name)
    assert "metrics.json" not in record["members"]  # never part of the SavedModel
    assert record["metrics"]["values"] == {"auc": 0.7}
    assert record["gate"]["decision"] == "promoted"
