"""The promotion gate: the pure rule, label encoding, and `Gate` on the emulators (ledger lease in
fake-gcs-server, aliases in the Vertex emulator, through the real clients)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest

from handlers.errors import TransientError
from handlers.gcs.ledger import Ledger
from handlers.gcs.objects import ObjectStore
from handlers.registry.evaluation import spec_for
from handlers.registry.interface import UPLOAD_KEY_LABEL, VersionRequest
from handlers.registry.promotion import (
    CHALLENGER_ALIAS,
    HELD,
    MANUAL,
    PROMOTED,
    Candidate,
    Gate,
    Rule,
    decide,
    decode_value,
    encode_value,
    gate_labels,
)
from handlers.registry.vertex import make_registry
from handlers.settings import Settings
from tests.conftest import Bucket, Vertex, function_env

AUC = Rule("auc")


def _d(rule: Rule, value: float | None, default_value: float | None, default: str | None = "1"):
    return decide(rule, value, default_version=default, default_value=default_value)


def test_the_rule_maximizing() -> None:
    assert _d(AUC, 0.80, None, default=None).decision == PROMOTED  # no default yet
    assert _d(AUC, 0.80, None).decision == PROMOTED  # the default has no value
    assert _d(AUC, 0.81, 0.80).decision == PROMOTED
    assert _d(AUC, 0.75, 0.80).decision == HELD
    assert _d(AUC, 0.80, 0.80).decision == HELD  # a tie keeps the current default
    assert _d(AUC, None, 0.80).decision == HELD
    assert _d(AUC, None, None, default=None).decision == HELD  # no value: never promoted


def test_the_rule_with_delta_threshold_and_minimizing() -> None:
    delta = Rule("auc", min_delta=0.05)
    assert _d(delta, 0.85, 0.80).decision == PROMOTED  # 0.85-0.80 is 0.04999... in floats
    assert _d(delta, 0.84, 0.80).decision == HELD
    bar = Rule("auc", threshold=0.7)
    assert _d(bar, 0.69, None, default=None).decision == HELD
    assert "below PROMOTION_THRESHOLD=0.7" in _d(bar, 0.69, None).reason
    assert _d(bar, 0.70, None).decision == PROMOTED
    # a default that fails the bar itself has nothing to defend, whatever the delta
    assert _d(Rule("auc", min_delta=0.5, threshold=0.7), 0.71, 0.69).decision == PROMOTED
    loss = Rule("loss", goal="minimize", min_delta=0.1, threshold=1.0)
    assert _d(loss, 0.5, 0.7).decision == PROMOTED
    assert _d(loss, 0.65, 0.7).decision == HELD
    assert _d(loss, 1.2, None).decision == HELD
    held = _d(loss, 0.65, 0.7)
    assert held.record() == {
        "decision": "held",
        "reason": held.reason,
        "metric": "loss",
        "value": 0.65,
        "default_version": "1",
        "default_value": 0.7,
    }
    assert "PROMOTION_MIN_DELTA=0.1" in held.reason


@pytest.mark.parametrize("value", [0.8, 0.0, -1.5, 1e-05, 1e20, 123456.789, 0.1 + 0.2, None])
def test_label_values_round_trip_within_vertex_rules(value: float | None) -> None:
    import re

    text = encode_value(value)
    assert re.fullmatch(r"[a-z0-9_-]{1,63}", text)
    assert decode_value(text) == value
    assert gate_labels(AUC, value) == {"gate-metric": "auc", "gate-metric-value": text}


# ---- Gate on the emulators ---------------------------------------------------------------------
IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


class World:
    def __init__(self, services: Any, bucket: Bucket, rule: Rule = AUC) -> None:
        self.settings = Settings.from_env(function_env(services))
        self.registry = make_registry(self.settings)
        self.store = ObjectStore(self.settings)
        self.bucket = bucket
        self.ledger = Ledger(self.store, self.settings.state_prefix, wait_seconds=20)
        self.gate = Gate(rule, self.registry, self.ledger, bucket.name)

    def version(self, n: int, value: float | None) -> Candidate:
        found = self.registry.ensure_version(
            VersionRequest(
                display_name="gated",
                artifact_uri=f"gs://{self.bucket.name}/registered/v{n}/",
                serving_image=IMAGE,
                description=f"v{n}",
                labels={UPLOAD_KEY_LABEL: f"key{n}"},
                make_default=False,
            )
        )
        source = f"file:gs://{self.bucket.name}/models/gated/v{n}/metrics.json#{n}"
        if value is not None:
            spec = spec_for({"auc": value}, source=source, generation=n, origin="file")
            self.registry.ensure_evaluation(found.version_name, spec)
        return Candidate(found.model, found.version_id, value, source if value else "none")

    def aliases(self, model: str) -> dict[str, tuple[str, ...]]:
        return {v.version_id: v.aliases for v in self.registry.list_versions(model)}


@pytest.fixture
def world(services: Any, bucket: Bucket, vertex: Vertex) -> World:
    for path in ("registered/v1/", "registered/v2/", "registered/v3/", "registered/v4/"):
        bucket.upload_bytes(b"x", path + "saved_model.pb")
    return World(services, bucket)


def test_worse_is_held_as_challenger_better_takes_default(world: World) -> None:
    v1 = world.version(1, 0.80)
    assert world.gate.run(v1).decision.decision == PROMOTED  # first version: already default
    v2 = world.version(2, 0.75)
    result = world.gate.run(v2)
    assert result.decision.decision == HELD
    assert result.decision.default_version == "1" and result.decision.default_value == 0.80
    assert CHALLENGER_ALIAS in result.aliases
    v3 = world.version(3, None)
    assert world.gate.run(v3).decision.decision == HELD
    assert world.aliases(v1.model) == {"1": ("default",), "2": (), "3": (CHALLENGER_ALIAS,)}
    v3_scored = replace(v3, value=0.90, source="file:late#9")
    promoted = world.gate.run(v3_scored)
    assert promoted.decision.decision == PROMOTED
    assert world.aliases(v1.model) == {"1": (), "2": (), "3": ("default",)}
    ledger = world.ledger.read(world.bucket.name, v1.model)
    assert ledger["versions"]["3"]["decision"] == PROMOTED and "lease" not in ledger
    assert [h["version_id"] for h in ledger["history"]] == ["1", "2", "3", "3"]


def test_the_same_source_again_replays_and_moves_nothing(world: World) -> None:
    v1, v2 = world.version(1, 0.80), world.version(2, 0.75)
    world.gate.run(v1)
    world.gate.run(v2)
    world.registry.merge_version_aliases(f"{v1.model}@2", add=["default"])  # an operator's move
    again = world.gate.run(v2)  # a redelivery of v2's event
    assert again.replayed and again.decision.decision == HELD
    assert "default" in world.aliases(v1.model)["2"]  # the operator's move stands


def test_the_default_value_comes_from_its_evaluation_when_the_ledger_has_none(
    world: World,
) -> None:
    v1 = world.version(1, 0.80)  # registered before the gate was on: no ledger entry
    v2 = world.version(2, 0.79)
    result = world.gate.run(v2)
    assert result.decision.decision == HELD and result.decision.default_value == 0.80
    preview = world.gate.preview(replace(v2, value=0.95))
    assert preview.decision == PROMOTED
    assert world.aliases(v1.model)["1"] == ("default",)  # the preview moved nothing


def test_racing_decisions_end_with_default_on_the_better_one(world: World) -> None:
    v1 = world.version(1, 0.70)
    world.gate.run(v1)
    v2, v3 = world.version(2, 0.80), world.version(3, 0.90)
    for order in ((v2, v3), (v3, v2)):
        world.registry.merge_version_aliases(f"{v1.model}@1", add=["default"])
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_decide_after, args=(world.gate, c, barrier, errors))
            for c in order
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert "default" in world.aliases(v1.model)["3"], order


def _decide_after(
    gate: Gate, candidate: Candidate, barrier: threading.Barrier, errors: list[BaseException]
) -> None:
    try:
        barrier.wait()
        gate.run(candidate, force=True)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_a_busy_lease_is_transient_and_an_expired_one_is_taken_over(world: World) -> None:
    v1 = world.version(1, 0.80)
    clock = [time.time()]
    impatient = Ledger(world.store, "registrar-state/", wait_seconds=0.2, clock=lambda: clock[0],
                       sleep=lambda s: clock.__setitem__(0, clock[0] + s))  # fmt: skip
    with pytest.raises(TransientError) as lost:
        with world.ledger.held(world.bucket.name, v1.model) as first:
            with pytest.raises(TransientError) as busy:
                with impatient.held(world.bucket.name, v1.model):
                    pass
            assert busy.value.code == "in_progress_elsewhere"
            clock[0] += 1000  # the holder overran its lease: another takes it over
            with impatient.held(world.bucket.name, v1.model) as second:
                second.doc["taken"] = True
            first.doc["lost"] = True
    assert lost.value.code == "gate_lease_expired"  # the overrunning holder's write is refused
    ledger = world.ledger.read(world.bucket.name, v1.model)
    assert ledger.get("taken") is True and "lost" not in ledger


def test_a_manual_promotion_is_remembered_and_leaves_challenger(world: World) -> None:
    v1, v2 = world.version(1, 0.80), world.version(2, 0.75)
    world.gate.run(v1)
    world.gate.run(v2)
    operator = Gate(AUC, world.registry, world.ledger, world.bucket.name, by="alice@laptop")
    operator.manual(
        v1.model,
        "2",
        lambda: world.registry.merge_version_aliases(f"{v1.model}@2", add=["default"]),
    )
    assert world.aliases(v1.model) == {"1": (), "2": ("default",)}
    entry = world.ledger.read(world.bucket.name, v1.model)["versions"]["2"]
    assert entry["decision"] == MANUAL and entry["by"] == "alice@laptop"
    assert entry["value"] == 0.75 and entry["default_version"] == "1"
