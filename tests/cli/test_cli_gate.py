"""`registrar versions` / `gate` / `promote` with the promotion gate on (PROMOTION_METRIC=auc),
over a model backfilled through the same pipeline the function runs."""

from __future__ import annotations

import contextlib
import io

import pytest

from handlers.cli.app import main
from tests.conftest import Bucket, Models, Services, Vertex, function_env


@pytest.fixture(scope="module")
def gated(services: Services, models: Models) -> Bucket:
    Vertex(services.vertex_url).reset()
    bucket = Bucket(services.storage_url, "cli-gated")
    for n, (local, auc) in enumerate(
        [(models.keras_a, 0.80), (models.keras_b, 0.75), (models.keras_a, 0.78)], start=1
    ):
        bucket.upload(local, f"models/gated/v{n}/model.keras", {"metrics": f'{{"auc": {auc}}}'})
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        for key, value in function_env(services, PROMOTION_METRIC="auc").items():
            patch.setenv(key, value)
        assert main(["backfill", f"gs://{bucket.name}/models/"]) == 0
    return bucket


@pytest.fixture
def gate_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMOTION_METRIC", "auc")


def _aliases(registrar) -> dict[str, list[str]]:
    doc = registrar("versions", "gated", "--json").json
    return {v["version_id"]: v["aliases"] for v in doc["versions"]}


def test_versions_show_the_gate_metric_and_decision(registrar, gated: Bucket, gate_on) -> None:
    run = registrar("versions", "gated", "--json")
    assert run.code == 0, run.err
    gates = {v["version_id"]: v["gate"] for v in run.json["versions"]}
    assert {k: (g["value"], g["decision"]) for k, g in gates.items()} == {
        "1": (0.80, "promoted"),
        "2": (0.75, "held"),
        "3": (0.78, "held"),
    }
    assert "does not beat the default version 1" in gates["3"]["reason"]
    table = registrar("versions", "gated")
    assert "gate metric" in table.out and "auc=0.78" in table.out and "held" in table.out


def test_gate_dry_run_says_what_it_would_decide_and_moves_nothing(
    registrar, gated: Bucket, gate_on
) -> None:
    before = _aliases(registrar)
    assert before == {"1": ["default"], "2": [], "3": ["challenger"]}
    run = registrar("gate", "gated", "--dry-run", "--json")
    assert run.code == 0, run.err
    assert run.json["version_id"] == "3"  # the challenger
    assert run.json["decision"]["decision"] == "held" and run.json["changed"] is False
    assert run.json["decision"]["default_value"] == 0.80
    text = registrar("gate", "gated@2", "--dry-run")
    assert "dry run" in text.out and "held" in text.out
    assert _aliases(registrar) == before


def test_promote_overrides_the_gate_as_a_manual_decision_and_gate_applies_the_rule(
    registrar, gated: Bucket, gate_on
) -> None:
    run = registrar("promote", "gated@3", "--json")
    assert run.code == 0, run.err
    assert _aliases(registrar) == {"1": [], "2": [], "3": ["default"]}  # challenger left it
    ledger = gated.read_json("registrar-state/gate/gated.json")
    entry = ledger["versions"]["3"]
    assert entry["decision"] == "manual" and entry["default_version"] == "1"
    assert entry["value"] == 0.78 and "@" in entry["by"]
    [record] = [n for n in gated.names("registrar-state/uploads/models/gated/v3/")]
    assert gated.read_json(record)["gate"]["decision"] == "manual"
    # asked again, the gate puts `default` back on the better version 1
    run = registrar("gate", "gated@1", "--json")
    assert run.json["decision"]["decision"] == "promoted" and run.json["changed"] is True
    assert _aliases(registrar)["1"] == ["default"]


def test_gate_without_a_metric_is_a_usage_error(registrar, gated: Bucket) -> None:
    run = registrar("gate", "gated", "--dry-run")
    assert run.code == 2 and "PROMOTION_METRIC is not set" in run.err
