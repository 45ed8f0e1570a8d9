"""versions, show, status, verify, promote and rollback over models registered once per module."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import pytest

from handlers.cli.app import main
from tests.conftest import Bucket, Models, Services, Vertex, function_env


@dataclass(frozen=True)
class Registered:
    bucket: Bucket
    vertex: Vertex
    generations: dict[str, int]  # object name -> generation


@pytest.fixture(scope="module")
def registered(services: Services, models: Models) -> Registered:
    vertex = Vertex(services.vertex_url)
    vertex.reset()
    bucket = Bucket(services.storage_url, "cli-registered")
    names = {
        "models/churn/v1/model.keras": models.keras_a,
        "models/churn/v2/model.keras": models.keras_b,
        "models/churn/v3/model.keras": models.keras_a,
        "models/pilot/v1/model.keras": models.keras_a,
        "models/pilot/v2/model.keras": models.keras_b,
        "models/pilot/v3/model.keras": models.keras_a,
        "models/victim/v1/model.keras": models.keras_b,
    }
    generations = {n: int(bucket.upload(p, n)["generation"]) for n, p in names.items()}
    bucket.upload_dir(models.saved_model, "models/ranker/v1/")
    bucket.upload_bytes(b"garbage", "models/broken/v1/model.keras")
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(io.StringIO()):
        for key, value in function_env(services).items():
            patch.setenv(key, value)
        assert main(["backfill", f"gs://{bucket.name}/models/"]) == 1  # broken/v1 is rejected
    assert len(vertex.all_versions()) == 8
    return Registered(bucket, vertex, generations)


def test_versions_json_lists_every_version_with_lineage(registrar, registered: Registered):
    run = registrar("versions", "churn", "--json")
    assert run.code == 0, run.err
    doc = run.json
    assert doc["model"].endswith("/models/churn") and doc["display_name"] == "churn"
    assert [v["version_id"] for v in doc["versions"]] == ["1", "2", "3"]
    bucket = registered.bucket.name
    assert [v["source_uri"] for v in doc["versions"]] == [
        f"gs://{bucket}/models/churn/v{i}/model.keras" for i in (1, 2, 3)
    ]
    assert doc["versions"][2]["aliases"] == ["default"]
    assert (
        doc["versions"][0]["source_generation"]
        == registered.generations["models/churn/v1/model.keras"]
    )
    assert all(v["digest_prefix"].startswith("sha256:") and v["created"] for v in doc["versions"])
    # v1 and v3 are the same bytes: the same digest
    assert doc["versions"][0]["digest_prefix"] == doc["versions"][2]["digest_prefix"]
    assert doc["versions"][0]["digest_prefix"] != doc["versions"][1]["digest_prefix"]


def test_versions_table_and_unknown_model(registrar, registered: Registered):
    run = registrar("versions", "churn")
    assert run.code == 0
    assert "models/churn/v2/model.keras" in run.out and "default" in run.out
    missing = registrar("versions", "no-such-model")
    assert missing.code == 3
    assert "no model named 'no-such-model'" in missing.err and "backfill" in missing.err
    as_json = registrar("versions", "no-such-model", "--json")
    assert as_json.code == 3 and as_json.json["exit_code"] == 3


def test_show_a_version_with_its_record(registrar, registered: Registered):
    run = registrar("show", "churn@2", "--json")
    assert run.code == 0, run.err
    doc = run.json
    assert doc["version"]["version_id"] == "2"
    record = doc["record"]
    generation = registered.generations["models/churn/v2/model.keras"]
    assert doc["record_uri"] == (
        f"gs://{registered.bucket.name}/registrar-state/uploads/models/"
        f"churn/v2/model.keras/g{generation}.json"
    )
    assert record["state"] == "registered" and record["version_id"] == "2"
    assert record["digest"].startswith("sha256:")
    assert record["digest"][7:47] == doc["version"]["labels"]["content-sha256"]
    assert record["artifact_uri"] == doc["version"]["artifact_uri"]
    assert "saved_model.pb" in record["artifact_files"]

    by_alias = registrar("show", "churn@default", "--json").json
    assert by_alias["version"]["version_id"] == "3"
    assert registrar("show", "churn", "--json").json["version"]["version_id"] == "3"
    table = registrar("show", "churn@1")
    assert table.code == 0 and "registration record" in table.out and "model.keras" in table.out
    assert registrar("show", "churn@9").code == 3
    assert registrar("show", "@").code == 2


def test_show_a_savedmodel_version_finds_its_directory_record(registrar, registered: Registered):
    doc = registrar("show", "ranker", "--json").json
    assert doc["record"]["kind"] == "saved_model"
    assert doc["record"]["source"] == f"gs://{registered.bucket.name}/models/ranker/v1/"
    assert "/members-" in doc["record_uri"]


def test_status_of_uploads(registrar, registered: Registered):
    bucket = registered.bucket.name
    run = registrar("status", f"gs://{bucket}/models/churn/v1/model.keras", "--json")
    assert run.code == 0, run.err
    assert run.json["latest"]["state"] == "registered"
    assert run.json["latest"]["version"].endswith("/models/churn@1")
    assert run.json["latest"]["generation"] == registered.generations["models/churn/v1/model.keras"]
    assert run.json["live_generation_unprocessed"] is False

    saved = registrar("status", f"gs://{bucket}/models/ranker/v1", "--json")  # no trailing slash
    assert saved.code == 0 and saved.json["uri"].endswith("/models/ranker/v1/")
    assert saved.json["latest"]["state"] == "registered"

    rejected = registrar("status", f"gs://{bucket}/models/broken/v1/model.keras")
    assert rejected.code == 1
    assert "rejected" in rejected.out

    registered.bucket.upload_bytes(b"late", "models/late/v1/model.keras")
    late = registrar("status", f"gs://{bucket}/models/late/v1/model.keras")
    assert late.code == 3 and "registrar backfill" in late.err


def test_status_shows_newest_generation_first(registrar, registered: Registered, models):
    bucket = registered.bucket
    name = "models/churn/v3/model.keras"
    new = bucket.upload(models.keras_b, name)  # overwrite: a new generation of the same upload
    before = registrar("status", f"gs://{bucket.name}/{name}", "--json").json
    assert before["live_generation_unprocessed"] is True
    assert registrar("backfill", f"gs://{bucket.name}/models/churn/").code == 0
    after = registrar("status", f"gs://{bucket.name}/{name}", "--json").json
    assert [r["generation"] for r in after["records"]] == [
        int(new["generation"]),
        registered.generations[name],
    ]
    assert after["latest"]["version"].endswith("/models/churn@4")
    registered.generations[name] = int(new["generation"])


def test_verify_passes_then_detects_a_tampered_artifact(registrar, registered: Registered):
    assert registrar("verify", "victim").code == 0
    ok = registrar("verify", "ranker@1", "--json")
    assert ok.code == 0 and ok.json["ok"] is True
    assert ok.json["versions"][0]["files_checked"] >= 4

    doc = registrar("show", "victim@1", "--json").json
    base = doc["version"]["artifact_uri"].split("/", 3)[3]
    directory = base + "1/"  # TF Serving's numbered layout (the default serving image)
    bucket = registered.bucket
    bucket.upload_bytes(b"tampered", directory + "saved_model.pb")
    bucket.upload_bytes(b"extra", directory + "variables/backdoor.bin")
    bucket.upload_bytes(b"a second version", base + "2/saved_model.pb")  # TF Serving would load it

    run = registrar("verify", "victim", "--json")
    assert run.code == 1
    [result] = run.json["versions"]
    kinds = {(p["kind"], p["path"]) for p in result["problems"]}
    assert ("modified", "saved_model.pb") in kinds
    assert ("extra", "variables/backdoor.bin") in kinds
    assert ("extra", "2/saved_model.pb") in kinds
    table = registrar("verify", "victim@1")
    assert table.code == 1 and "FAILED" in table.out and "saved_model.pb" in table.out


def test_verify_detects_a_missing_file_and_a_swapped_keras(registrar, registered: Registered):
    doc = registrar("show", "pilot@2", "--json").json
    directory = doc["version"]["artifact_uri"].split("/", 3)[3] + "1/"  # numbered layout
    bucket = registered.bucket
    index = next(n for n in bucket.names(directory) if n.endswith("variables.index"))
    bucket.handle.blob(index).delete()
    original = bucket.handle.blob(directory + "model.keras").download_as_bytes()
    bucket.upload_bytes(original + b"\0", directory + "model.keras")
    run = registrar("verify", "pilot@2", "--json")
    assert run.code == 1
    kinds = {p["kind"] for p in run.json["versions"][0]["problems"]}
    assert {"missing", "modified", "digest"} <= kinds
    assert registrar("verify", "pilot@1").code == 0  # the other versions are intact


def test_promote_and_rollback_move_the_default_alias(registrar, registered: Registered):
    def default() -> str:
        return registrar("show", "pilot@default", "--json").json["version"]["version_id"]

    assert default() == "3"
    run = registrar("promote", "pilot@1")
    assert run.code == 0, run.err
    assert default() == "1"
    assert registrar("promote", "pilot@2", "--json").json["from"] == "1"
    assert default() == "2"
    again = registrar("promote", "pilot@2", "--json")
    assert again.code == 0 and again.json["changed"] is False

    back = registrar("rollback", "pilot", "--json")
    assert back.code == 0, back.err
    assert (back.json["from"], back.json["to"]) == ("2", "1")
    assert back.json["chosen_by"] == "recorded history"
    assert default() == "1"
    assert registrar("rollback", "pilot", "--json").json["to"] == "3"  # held it before v1
    assert default() == "3"

    history = registered.bucket.read_json("registrar-state/aliases/pilot.json")
    moves = [(h["action"], h["from"], h["to"]) for h in history["aliases"]["default"]["history"]]
    assert moves == [
        ("promote", "3", "1"),
        ("promote", "1", "2"),
        ("rollback", "2", "1"),
        ("rollback", "1", "3"),
    ]
    # Nothing recorded is left: rollback falls back to the previous version.
    fallback = registrar("rollback", "pilot", "--json").json
    assert (fallback["to"], fallback["chosen_by"]) == (
        "2",
        "previous version (no recorded history)",
    )


def test_promote_a_custom_alias_and_usage_errors(registrar, registered: Registered):
    run = registrar("promote", "churn@1", "--alias", "candidate", "--json")
    assert run.code == 0 and run.json["from"] is None
    versions = registrar("versions", "churn", "--json").json["versions"]
    assert "candidate" in versions[0]["aliases"]
    assert registrar("promote", "churn@2", "--alias", "candidate").code == 0
    assert registrar("rollback", "churn", "--alias", "candidate", "--json").json["to"] == "1"
    assert registrar("promote", "churn").code == 2  # no version
    assert registrar("promote", "churn@1", "--alias", "Bad_Alias").code == 2
    assert registrar("promote", "churn@42").code == 3
    assert registrar("rollback", "churn@2").code == 2
    assert registrar("rollback", "churn", "--alias", "nobody-has-it").code == 3
    assert registrar("rollback", "victim").code == 3  # one version: nothing to go back to


def test_settings_errors_exit_2_naming_the_variable(registrar, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    run = registrar("versions", "churn")
    assert run.code == 2 and "GOOGLE_CLOUD_PROJECT" in run.err
    assert registrar("versions", "churn", "--project", "Not A Project").code == 2


def test_transient_vertex_failure_exits_4(registrar, registered: Registered):
    vertex = registered.vertex
    before = vertex.state()["calls"].get("ListModelVersions", 0)
    vertex.fault("ListModelVersions", count=1_000_000, status=503)  # outlasts the retry budget
    run = registrar("versions", "churn")
    assert run.code == 4 and "retry" in run.err
    assert vertex.state()["calls"]["ListModelVersions"] - before >= 2  # retried, then gave up
    vertex.clear_faults()
    assert registrar("versions", "churn").code == 0  # Vertex is back


def test_options_work_before_and_after_the_command(registrar, registered: Registered):
    before = registrar("--json", "versions", "churn")
    after = registrar("versions", "churn", "--json")
    assert before.code == after.code == 0
    assert before.json["versions"] == after.json["versions"]
    assert registrar("versions", "churn", "--location", "nowhere").code == 2


def test_importing_the_cli_pulls_in_neither_tensorflow_nor_the_vertex_sdk() -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = (
        "import sys, handlers.cli.app; print([m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras') or m.startswith('google.cloud.aiplatform')])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
