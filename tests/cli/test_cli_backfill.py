"""`registrar backfill`: the function's pipeline over a listing; re-running registers nothing."""

from __future__ import annotations

import random
import threading
import zipfile
from datetime import date
from pathlib import Path

import pytest
import requests

from handlers.cli import backfill as backfill_lib
from handlers.errors import TransientError
from handlers.intake.events import ObjectEvent
from handlers.outcome import Outcome
from tests.conftest import EMULATOR_TODAY, Bucket, Models, Services, Vertex


def _truncated_weights(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith(".h5"):
                data = data[: len(data) // 3]  # loads statically fine, fails in the sandbox
            dst.writestr(info, data)
    return target


def _populate(bucket: Bucket, models: Models, tmp_path: Path) -> None:
    """10 valid uploads (8 .keras over two models, 2 SavedModels), 3 invalid, and some noise."""
    for i in range(4):
        bucket.upload((models.keras_a, models.keras_b)[i % 2], f"models/fraud/v{i + 1}/model.keras")
        bucket.upload((models.keras_b, models.keras_a)[i % 2], f"models/churn/v{i + 1}/model.keras")
    bucket.upload_dir(models.saved_model, "models/ranker/v1/")
    bucket.upload_dir(models.saved_model_b, "models/ranker/v2/")
    bucket.upload_bytes(b"not a zip at all", "models/broken/v1/model.keras")
    bucket.upload(
        _truncated_weights(models.keras_a, tmp_path / "t.keras"), "models/broken/v2/model.keras"
    )
    bucket.upload_bytes(b"PK\x05\x06" + b"\0" * 18, "models/broken/v3/model.keras")  # empty zip
    bucket.upload_bytes(b"# notes", "models/fraud/README.md")
    bucket.upload_bytes(b"x", "models/orphan/v1/variables/variables.index")  # no saved_model.pb
    bucket.upload_bytes(b"x", "elsewhere/model.keras")  # outside MODEL_PREFIX


def test_backfill_registers_valid_rejects_invalid_and_a_rerun_adds_nothing(
    registrar, bucket: Bucket, vertex: Vertex, models: Models, tmp_path: Path
) -> None:
    _populate(bucket, models, tmp_path)

    first = registrar("backfill", f"gs://{bucket.name}/models/", "--json", "--concurrency", "3")
    assert first.code == 1, first.err  # 1: rejected uploads were found
    report = first.json
    assert report["summary"]["registered"] == 10
    assert report["summary"]["rejected"] == 3
    assert report["summary"]["already registered"] == 0
    rejected = {
        r["uri"].rsplit("/", 2)[-2]: r for r in report["results"] if r["category"] == "rejected"
    }
    assert set(rejected) == {"v1", "v2", "v3"}
    assert all(r["reason"] and r["message"] for r in rejected.values())
    skipped = {r["uri"]: r["reason"] for r in report["results"] if r["category"] == "skipped"}
    assert skipped == {
        f"gs://{bucket.name}/models/fraud/README.md": "not_a_model",
        f"gs://{bucket.name}/models/orphan/v1/": "incomplete_saved_model",
    }
    assert len(vertex.all_versions()) == 10

    # Versions of one model follow upload order, so `default` ends on the newest upload.
    [fraud] = vertex.models("fraud")
    versions = vertex.versions(fraud["name"])
    assert [v["labels"]["source-version"] for v in versions] == ["v1", "v2", "v3", "v4"]
    assert "default" in versions[-1]["versionAliases"]
    [ranker] = vertex.models("ranker")
    assert [v["labels"]["source-kind"] for v in vertex.versions(ranker["name"])] == [
        "saved-model",
        "saved-model",
    ]
    record = bucket.read_json(
        "registrar-state/uploads/models/broken/v2/model.keras/"
        f"g{bucket.resource('models/broken/v2/model.keras')['generation']}"
        ".json"
    )
    assert record["state"] == "rejected"

    second = registrar("backfill", f"gs://{bucket.name}/models/")
    assert second.code == 1
    assert len(vertex.all_versions()) == 10  # nothing new
    assert "0 registered" in second.out and "10 already registered" in second.out
    assert "3 rejected" in second.out
    assert "rejected earlier" in second.out  # reasons are shown again from the records


def test_dry_run_writes_nothing_then_reports_what_is_done(
    registrar, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    bucket.upload_dir(models.saved_model_b, "models/ranker/v1/")
    bucket.upload_bytes(b"x", "models/notes.txt")
    dry = registrar("backfill", f"gs://{bucket.name}/models/", "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json["summary"]["would register"] == 2
    assert dry.json["summary"]["skipped"] == 1
    assert vertex.models() == [] and bucket.names("registrar-state/") == []
    assert bucket.names("registered/") == []

    assert registrar("backfill", f"gs://{bucket.name}/models/churn/").code == 0
    again = registrar("backfill", f"gs://{bucket.name}/models/", "--dry-run", "--json")
    by_uri = {r["uri"]: r["category"] for r in again.json["results"]}
    assert by_uri[f"gs://{bucket.name}/models/churn/v1/model.keras"] == "already registered"
    assert by_uri[f"gs://{bucket.name}/models/ranker/v1/"] == "would register"
    assert len(vertex.all_versions()) == 1


def test_env_vars_drive_options(
    registrar, bucket: Bucket, vertex: Vertex, models: Models, monkeypatch
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    monkeypatch.setenv("REGISTRAR_DRY_RUN", "true")
    monkeypatch.setenv("REGISTRAR_JSON", "1")
    run = registrar("backfill", f"gs://{bucket.name}/models/")
    assert run.code == 0 and run.json["dry_run"] is True
    assert vertex.models() == []
    monkeypatch.setenv("REGISTRAR_CONCURRENCY", "0")
    assert registrar("backfill", f"gs://{bucket.name}/models/").code == 2


def test_usage_errors_and_missing_bucket(registrar, bucket: Bucket, vertex: Vertex) -> None:
    outside = registrar("backfill", f"gs://{bucket.name}/elsewhere/")
    assert outside.code == 2 and "MODEL_PREFIX" in outside.err
    assert registrar("backfill", "/local/path").code == 2
    assert registrar("backfill").code == 2
    assert registrar().code == 2
    missing = registrar("backfill", "gs://no-such-bucket-here/models/")
    assert missing.code == 3, missing.err


def test_transient_registry_failure_exits_4_and_a_rerun_finishes(
    registrar, bucket: Bucket, vertex: Vertex, models: Models
) -> None:
    bucket.upload(models.keras_a, "models/churn/v1/model.keras")
    vertex.fault("UploadModel", count=1_000_000, status=503)  # until cleared below
    failed = registrar("backfill", f"gs://{bucket.name}/models/", "--json")
    assert failed.code == 4, failed.err
    [result] = failed.json["results"]
    assert result["category"] == "failed" and "UploadModel" in result["message"]
    assert vertex.models() == []
    status = registrar("status", f"gs://{bucket.name}/models/churn/v1/model.keras", "--json")
    assert status.json["latest"]["state"] == "retrying"

    vertex.clear_faults()  # back up
    again = registrar("backfill", f"gs://{bucket.name}/models/")
    assert again.code == 0, again.out + again.err
    assert "1 registered" in again.out
    assert len(vertex.all_versions()) == 1


# ---- pacing under Vertex's UploadModel quota (issue 12) -------------------------------------


class FakeTime:
    """A clock that moves only when someone sleeps; shared by backfill and the emulator's quota."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def clock(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept.append(seconds)

    def timer(self) -> backfill_lib.Timer:
        return backfill_lib.Timer(clock=self.clock, sleep=self.sleep)


def _taken_at(pacer: backfill_lib.Pacer, fake: FakeTime, count: int) -> list[float]:
    times = []
    for _ in range(count):
        pacer.acquire()
        times.append(fake.clock() - 1000.0)
    return times


def test_pacer_lets_n_per_minute_through_and_the_next_waits_for_a_slot() -> None:
    fake = FakeTime()
    pacer = backfill_lib.Pacer(3, timer=fake.timer())
    # A burst of 3 goes at once; the 4th waits until the first is a minute old.
    assert _taken_at(pacer, fake, 7) == [0, 0, 0, 60, 60, 60, 120]
    assert pacer.stats()["upload_calls"] == 7 and pacer.stats()["waited_s"] == 120

    fake = FakeTime()
    pacer = backfill_lib.Pacer(3, timer=fake.timer())
    for _ in range(3):  # spread out: 0, 10, 20
        assert pacer.acquire() == 0
        fake.sleep(10)
    assert pacer.acquire() == 30  # the 4th in that minute: at 60, a minute after the first
    assert fake.clock() - 1000.0 == 60
    assert pacer.acquire() == 10  # then 70, a minute after the second


def test_pacer_holds_across_threads() -> None:
    fake = FakeTime()
    seen = threading.local()  # the clock reading a thread's acquire took its slot at

    def clock() -> float:
        seen.now = fake.clock()
        return seen.now

    pacer = backfill_lib.Pacer(5, timer=backfill_lib.Timer(clock=clock, sleep=fake.sleep))
    stamps: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            pacer.acquire()
            with lock:
                stamps.append(seen.now)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 24
    stamps.sort()
    assert stamps[-1] - stamps[0] == 240  # bursts of 5 at 0, 60, 120, 180; the last 4 at 240
    # No 60-second window (half-open, as Vertex's) holds more than 5 submissions.
    assert max(sum(1 for s in stamps if t - 60 < s <= t) for t in stamps) <= 5


def test_back_off_holds_every_submission_and_grows() -> None:
    fake = FakeTime()
    pacer = backfill_lib.Pacer(600, timer=fake.timer(), rng=random.Random(7))
    waits = [pacer.back_off(attempt) for attempt in range(5)]
    assert 10 <= waits[0] <= 20 and 20 <= waits[1] <= 40
    assert all(30 <= w <= 60 for w in waits[2:])
    assert sum(waits[:4]) >= 90  # the retries outlast a quota window
    # A back-off begun elsewhere makes the next acquire wait for its end.
    start = fake.clock()
    pacer._resume_at = start + 25  # as if another thread had just met a 429
    assert pacer.acquire() == 25
    assert pacer.stats()["quota_retries"] == 5


def _quota_error() -> TransientError:
    from google.api_core import exceptions as api

    from handlers.registry.vertex_errors import UploadInterrupted, translate

    cause = api.TooManyRequests("Quota exceeded for quota metric 'Job or LRO submission'")
    try:
        try:
            raise translate(cause, "UploadModel", "p") from cause
        except TransientError as exc:
            raise UploadInterrupted(str(exc)) from exc
    except TransientError as exc:
        return exc


def test_over_quota_reads_the_cause_of_the_registry_error() -> None:
    from google.api_core import exceptions as api

    from handlers.registry.vertex_errors import translate

    quota = _quota_error()
    assert quota.code == "vertex_unavailable"  # the registry reports a 429 like a 503
    assert backfill_lib.over_quota(quota)
    unavailable = api.ServiceUnavailable("down")
    try:
        raise translate(unavailable, "UploadModel", "p") from unavailable
    except TransientError as exc:
        assert not backfill_lib.over_quota(exc)
    assert not backfill_lib.over_quota(TransientError("busy", code="in_progress_elsewhere"))


class _Pipeline:
    """handle_object raising the given failures in turn, then registering."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    def handle_object(self, event: ObjectEvent) -> Outcome:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Outcome("registered", "ok", {"model": "m", "version_id": "1"})


_EVENT = ObjectEvent(bucket="b", name="models/x/v1/model.keras", generation=1, event_id="e")


def test_handle_waits_out_429s_then_reports_pending() -> None:
    fake = FakeTime()
    pacer = backfill_lib.Pacer(50, timer=fake.timer(), rng=random.Random(1))
    pipeline = _Pipeline(_quota_error(), _quota_error())
    result = backfill_lib.handle(pipeline, _EVENT, pacer=pacer)
    assert result.category == backfill_lib.REGISTERED and pipeline.calls == 3
    assert pacer.quota_retries == 2 and fake.clock() - 1000.0 >= 10 + 20

    pipeline = _Pipeline(*(_quota_error() for _ in range(10)))
    result = backfill_lib.handle(pipeline, _EVENT, pacer=pacer, quota_retries=2)
    assert result.category == backfill_lib.PENDING and result.reason == "quota_exceeded"
    assert pipeline.calls == 3 and "quota" in result.message
    assert backfill_lib.exit_status([result]) == backfill_lib.FAILED  # exit 4: run again

    # Anything else transient is a failure at once, with no wait.
    before = fake.clock()
    pipeline = _Pipeline(TransientError("Vertex AI UploadModel failed: 503"))
    result = backfill_lib.handle(pipeline, _EVENT, pacer=pacer)
    assert result.category == backfill_lib.FAILED and fake.clock() == before


def test_pace_uploads_gates_the_registrys_own_upload_calls() -> None:
    fake = FakeTime()
    pacer = backfill_lib.Pacer(2, timer=fake.timer())

    class Registry:
        def upload_model(self, request: str) -> str:
            return f"uploaded {request}"

        def ensure_version(self, request: str) -> str:
            return self.upload_model(request)  # as VertexRegistry does, retries included

    registry = backfill_lib.pace_uploads(Registry(), pacer)
    assert [registry.ensure_version(str(i)) for i in range(3)] == [
        "uploaded 0",
        "uploaded 1",
        "uploaded 2",
    ]
    assert pacer.submissions == 3 and fake.clock() - 1000.0 == 60


@pytest.fixture
def quota_vertex(services: Services, monkeypatch: pytest.MonkeyPatch):
    """An in-process Vertex emulator enforcing the LRO quota on a fake clock that backfill shares.

    Returns a function: quota_vertex(per_minute) -> (Vertex, AdminClient, FakeTime); the
    `registrar` fixture's environment is pointed at it."""
    from emulators.vertex import AdminClient, start_in_thread

    servers = []

    def start(per_minute: int) -> tuple[Vertex, AdminClient, FakeTime]:
        fake = FakeTime()
        server, url = start_in_thread(
            storage_url=services.storage_url,
            quota_per_minute=per_minute,
            quota_clock=fake.clock,
            today=date.fromisoformat(EMULATOR_TODAY),
        )
        servers.append(server)
        monkeypatch.setenv("VERTEX_AI_EMULATOR_HOST", url)
        monkeypatch.setattr(backfill_lib, "TIMER", fake.timer())
        return Vertex(url), AdminClient(url), fake

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _five_uploads(bucket: Bucket, models: Models) -> None:
    for name in ("alpha", "beta", "gamma"):
        bucket.upload(models.keras_a, f"models/{name}/v1/model.keras")
    bucket.upload(models.keras_b, "models/alpha/v2/model.keras")
    bucket.upload_dir(models.saved_model_b, "models/ranker/v1/")


def _registered_exactly_once(vertex: Vertex, bucket: Bucket) -> None:
    versions = vertex.all_versions()
    keys = [v["labels"]["registrar-upload-key"] for v in versions]
    assert len(keys) == len(set(keys)) == 5, keys  # no upload registered twice
    names = sorted(m["displayName"] for m in vertex.models())
    assert names == ["alpha", "beta", "gamma", "ranker"]
    [alpha] = vertex.models("alpha")
    assert [v["labels"]["source-version"] for v in vertex.versions(alpha["name"])] == ["v1", "v2"]
    records = [n for n in bucket.names("registrar-state/uploads/") if n.endswith(".json")]
    states = [bucket.read_json(n)["state"] for n in records]
    assert states == ["registered"] * 5


def test_backfill_paced_above_the_quota_retries_429s_and_registers_each_once(
    registrar, quota_vertex, bucket: Bucket, models: Models
) -> None:
    vertex, admin, fake = quota_vertex(3)
    _five_uploads(bucket, models)

    run = registrar(
        "backfill", f"gs://{bucket.name}/models/", "--json",
        "--concurrency", "2", "--uploads-per-minute", "20",
    )  # fmt: skip
    assert run.code == 0, run.err + run.out
    report = run.json
    assert report["summary"]["registered"] == 5
    assert report["summary"]["pending"] == report["summary"]["failed"] == 0
    assert report["pacing"]["uploads_per_minute"] == 20
    assert report["pacing"]["quota_retries"] >= 1  # the quota was hit and waited out
    state = admin.state()
    assert state["calls"]["UploadModel"] > 5  # the refused (429) submissions, then the 5
    assert state["quota_per_minute"] == 3
    _registered_exactly_once(vertex, bucket)
    assert fake.clock() - 1000.0 >= 60  # 5 uploads at 3 a minute take over a minute

    again = registrar("backfill", f"gs://{bucket.name}/models/", "--json")
    assert again.code == 0 and again.json["summary"]["already registered"] == 5
    assert admin.state()["calls"]["UploadModel"] == state["calls"]["UploadModel"]


def test_backfill_paced_below_the_quota_never_meets_a_429(
    registrar, quota_vertex, bucket: Bucket, models: Models, monkeypatch
) -> None:
    vertex, admin, fake = quota_vertex(5)
    _five_uploads(bucket, models)
    monkeypatch.setenv("REGISTRAR_UPLOADS_PER_MINUTE", "2")

    run = registrar("backfill", f"gs://{bucket.name}/models/", "--json", "--concurrency", "2")
    assert run.code == 0, run.err + run.out
    assert run.json["summary"]["registered"] == 5
    pacing = run.json["pacing"]
    assert pacing["uploads_per_minute"] == 2 and pacing["quota_retries"] == 0
    assert pacing["upload_calls"] == 5
    assert admin.state()["calls"]["UploadModel"] == 5  # each admitted the first time: no 429
    assert fake.clock() - 1000.0 >= 120  # 2 a minute: the 5th waited two minutes
    _registered_exactly_once(vertex, bucket)


def test_uploads_per_minute_is_checked(
    registrar, bucket: Bucket, vertex: Vertex, monkeypatch
) -> None:
    uri = f"gs://{bucket.name}/models/"
    for bad in ("0", "601", "fast"):
        run = registrar("backfill", uri, "--uploads-per-minute", bad)
        assert run.code == 2 and "--uploads-per-minute" in run.err, run.err
    monkeypatch.setenv("REGISTRAR_UPLOADS_PER_MINUTE", "700")
    assert registrar("backfill", uri).code == 2
    monkeypatch.setenv("REGISTRAR_UPLOADS_PER_MINUTE", "600")
    ok = registrar("backfill", uri, "--json")
    assert ok.code == 0 and ok.json["pacing"]["uploads_per_minute"] == 600
    monkeypatch.delenv("REGISTRAR_UPLOADS_PER_MINUTE")
    assert registrar("backfill", uri, "--json").json["pacing"]["uploads_per_minute"] == 50


def test_backfill_starts_no_canary_unless_asked_and_paces_it_with_uploads(
    registrar, bucket: Bucket, vertex: Vertex, models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setenv("DEPLOY_ENDPOINT", "serving-{model}")
    for i in range(2):
        bucket.upload((models.keras_a, models.keras_b)[i], f"models/fraud/v{i + 1}/model.keras")
    plain = registrar("backfill", f"gs://{bucket.name}/models/", "--json")
    assert plain.code == 0, plain.err
    assert plain.json["summary"]["registered"] == 2 and plain.json["canaries"] is False
    endpoints = requests.get(f"{vertex.url}/v1/{vertex.parent}/endpoints", timeout=5).json()
    assert endpoints.get("endpoints", []) == []  # nothing was deployed

    bucket.upload(models.keras_a, "models/fraud/v3/model.keras")
    asked = registrar("backfill", f"gs://{bucket.name}/models/", "--json", "--canary")
    assert asked.code == 0, asked.err
    assert asked.json["canaries"] is True and asked.json["summary"]["registered"] == 1
    [endpoint] = requests.get(f"{vertex.url}/v1/{vertex.parent}/endpoints", timeout=5).json()[
        "endpoints"
    ]
    assert endpoint["labels"]["registrar-model"] == "fraud"
    # one UploadModel + CreateEndpoint + DeployModel, all through the one pacer
    assert asked.json["pacing"]["upload_calls"] >= 3, asked.json["pacing"]
