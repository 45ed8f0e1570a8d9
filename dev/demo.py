"""`make demo`: the whole loop on local emulators, start to finish, then everything stops.

Starts fake-gcs-server, the Vertex AI emulator, functions-framework serving `register_model` and the
event bridge; builds two small real TF models; uploads a `.keras` model, a SavedModel directory
(files in shuffled order, one event each) and two more versions of the first, with the promotion
gate on (PROMOTION_METRIC=auc): version 2 beats version 1 and takes `default`, version 3 is held
back as `challenger` once its late metrics.json arrives, with the reason; prints the registry;
ends by deploying the first version and then the default one as a 10% canary to an endpoint with
`registrar deploy` (on the emulator's Endpoint service) and printing the traffic split.
One larger model (1 MB, over the demo's HANDOFF_BYTES of 500 kB) is handed off by the function to
the Cloud Run job (the jobs emulator runs `python -m handlers.job` as a local process), which
registers it; `registrar status` and `registrar job` show the hand-off.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dev import stack
from dev.bridge import EventBridge

LOG_DIR = stack.ROOT / ".dev-run" / "demo-logs"
EXPECTED = {"fraud-detector": 3, "ranker": 1, "big-model": 1}
GATE = {"PROMOTION_METRIC": "auc"}  # the demo's function runs with the promotion gate on
HANDOFF = {"HANDOFF_BYTES": "500000"}  # big-model (1 MB) goes to the Cloud Run job
BIG = "models/big-model/v1/model.keras"


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    started = time.monotonic()
    print("starting fake-gcs-server, Vertex AI emulator and functions-framework ...", flush=True)
    services = stack.start_stack(log_dir=LOG_DIR, with_job=True, **GATE, **HANDOFF)
    assert services.function is not None
    bridge = EventBridge(services.storage.url, stack.BUCKET, services.function.url).start()
    try:
        with tempfile.TemporaryDirectory(prefix="registrar-demo-") as tmp:
            _upload_models(Path(tmp), services.storage.url)
            registry = _registry(services)
            _wait_for(registry, bridge)
            _late_metrics(services.storage.url, bridge)
            _print_registry(registry)
            _print_records(services.storage.url)
            _print_gate(services)
            _print_handoff(services)
            _deploy_default(services)
    finally:
        bridge.stop()
        services.stop()
    print(
        f"\ndemo finished in {time.monotonic() - started:.0f} s; every process stopped. "
        f"Logs: {LOG_DIR.relative_to(stack.ROOT)}/",
        flush=True,
    )


def _upload_models(tmp: Path, storage_url: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from tests.modelfactory import build_keras_model, build_saved_model

    print("building three small TensorFlow models ...", flush=True)
    with _quiet_stderr():  # TF's C++ start-up banner says nothing a demo user needs
        first = build_keras_model(tmp / "v1" / "model.keras", seed=1)
        second = build_keras_model(tmp / "v2" / "model.keras", seed=2)
        third = build_keras_model(tmp / "v3" / "model.keras", seed=4)
        saved = build_saved_model(tmp / "ranker", seed=3, shards=2)
        big = build_keras_model(tmp / "big" / "model.keras", seed=5, input_dim=512, units=512)
    bucket = storage.Client(
        project=stack.PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": storage_url},
    ).bucket(stack.BUCKET)

    def put(local: Path, name: str, **metadata: str) -> None:
        blob = bucket.blob(name)
        blob.metadata = metadata or None
        blob.upload_from_filename(str(local))
        print(f"  uploaded gs://{stack.BUCKET}/{name}", flush=True)

    put(first, "models/fraud-detector/2026-11-26/model.keras", description="weekly retrain")
    scores = tmp / "metrics.json"  # the metrics beside the model: imported as its evaluation
    scores.write_text('{"auc": 0.91, "accuracy": 0.88}')
    put(scores, "models/fraud-detector/2026-11-26/metrics.json")
    files = sorted(p for p in saved.rglob("*") if p.is_file())
    random.Random(7).shuffle(files)  # a directory upload arrives in any order
    for path in files:
        put(path, f"models/ranker/v1/{path.relative_to(saved).as_posix()}")
    put(big, BIG)  # over HANDOFF_BYTES: the function hands it to the Cloud Run job
    notes = tmp / "README.md"
    notes.write_text("not a model: the function ignores it with a log line\n")
    put(notes, "models/ranker/README.md")
    time.sleep(1.0)  # let the first version land first, so the second is visibly newer
    put(
        second,
        "models/fraud-detector/2026-11-27/model.keras",
        description="retrained",
        aliases="candidate",
        metrics='{"auc": 0.93}',  # metrics in the model object's own metadata
    )
    time.sleep(1.0)
    # no metrics yet: registered and held back as `challenger`; its metrics.json comes later
    put(third, "models/fraud-detector/2026-11-28/model.keras", description="smaller learning rate")


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _late_metrics(storage_url: str, bridge: EventBridge, timeout: float = 120.0) -> None:
    """Version 3's metrics.json arrives after it was registered: attached then, gate decided."""
    import json

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    bucket = storage.Client(
        project=stack.PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": storage_url},
    ).bucket(stack.BUCKET)
    name = "models/fraud-detector/2026-11-28/metrics.json"
    blob = bucket.blob(name)
    blob.upload_from_string('{"auc": 0.89, "accuracy": 0.87}')
    print(f"  uploaded gs://{stack.BUCKET}/{name} (late: after its model was registered)")
    record = bucket.blob(f"registrar-state/uploads/{name}/g{blob.generation}.json")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and json.loads(record.download_as_bytes()).get("state") == "attached":
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: {name} was not attached within {timeout:.0f} s; see {LOG_DIR}/")


def _print_gate(services: stack.Stack) -> None:
    """The gate as an operator sees it: `registrar versions` and `registrar gate --dry-run`."""
    from handlers.cli.app import main as registrar

    os.environ.update(stack.function_env(services.storage.url, services.vertex.url, **GATE))
    os.environ.setdefault("COLUMNS", "160")
    for argv in (["versions", "fraud-detector"], ["gate", "fraud-detector", "--dry-run"]):
        print(f"\n$ registrar {' '.join(argv)}", flush=True)
        if registrar(argv) != 0:
            raise SystemExit(f"demo: `registrar {' '.join(argv)}` failed (see above)")


def _print_handoff(services: stack.Stack) -> None:
    """The handed-off upload as an operator sees it: its record's history, then the execution."""
    import json

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from handlers.cli.app import main as registrar

    job = f"projects/{stack.PROJECT}/locations/{stack.LOCATION}/jobs/{stack.JOB_ID}"
    os.environ.update(stack.function_env(services.storage.url, services.vertex.url, **GATE))
    os.environ.update(CLOUD_RUN_EMULATOR_HOST=services.extra[0].url, JOB_NAME=job)
    client = storage.Client(
        project=stack.PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": services.storage.url},
    )
    print(f"\ngs://{stack.BUCKET}/{BIG} was handed off to the Cloud Run job:", flush=True)
    execution = ""
    for blob in client.list_blobs(stack.BUCKET, prefix=f"registrar-state/uploads/{BIG}/"):
        record = json.loads(blob.download_as_bytes())
        for step in record.get("history", []):
            print(f"  {step['at']}  {step['state']:<18} by {step['by']}")
        execution = (record.get("handoff") or {}).get("execution") or execution
    if execution:
        print(f"\n$ registrar job {execution.rsplit('/', 1)[1]}", flush=True)
        if registrar(["job", execution.rsplit("/", 1)[1]]) != 0:
            raise SystemExit("demo: the hand-off's execution did not succeed (see above)")


def _registry(services: stack.Stack):  # noqa: ANN202 - handlers.registry.vertex loads lazily
    from handlers.registry.vertex import make_registry
    from handlers.settings import Settings

    return make_registry(
        Settings.from_env(stack.function_env(services.storage.url, services.vertex.url))
    )


def _wait_for(registry, bridge: EventBridge, timeout: float = 300.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {
            m.display_name: len(registry.list_versions(m.model)) for m in registry.list_models()
        }
        if all(counts.get(name, 0) >= n for name, n in EXPECTED.items()) and bridge.idle():
            return
        time.sleep(0.5)
    raise SystemExit(
        f"demo: registrations did not complete within {timeout:.0f} s; see {LOG_DIR}/function.log"
    )


def _print_registry(registry) -> None:  # noqa: ANN001
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    table = Table(title="Vertex AI Model Registry (local emulator)", show_lines=True)
    for column in ("model", "version", "aliases", "artifact URI", "labels"):
        table.add_column(column, overflow="fold")
    for model in sorted(registry.list_models(), key=lambda m: m.display_name):
        for version in sorted(registry.list_versions(model.model), key=lambda v: int(v.version_id)):
            labels = ", ".join(
                f"{k}={v}" for k, v in sorted(version.labels.items()) if k != "registrar-upload-key"
            )
            table.add_row(
                f"{model.display_name}\n{model.model.rsplit('/', 1)[-1]}",
                version.version_id,
                ", ".join(version.aliases),
                version.artifact_uri,
                labels,
            )
    console.print(table)


def _print_records(storage_url: str) -> None:
    import json

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=stack.PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": storage_url},
    )
    print(f"\nUpload records (gs://{stack.BUCKET}/registrar-state/uploads/...):")
    for blob in client.list_blobs(stack.BUCKET, prefix="registrar-state/uploads/"):
        record = json.loads(blob.download_as_bytes())
        version = record.get("version_name", record.get("reason", {}).get("code", ""))
        print(f"  {record['state']:<10} {record['source']}  ->  {version}")


DEMO_ENDPOINT = "fraud-detector-prod"


def _deploy_default(services: stack.Stack) -> None:
    """`registrar deploy` as an operator would type it: version 1 takes the endpoint, then the
    default version (the newest upload) joins as a 10% canary; the last table is the split."""
    from handlers.cli.app import main as registrar

    os.environ.update(stack.function_env(services.storage.url, services.vertex.url))
    os.environ.setdefault("COLUMNS", "120")
    for argv in (
        ["deploy", "fraud-detector@1", "--endpoint", DEMO_ENDPOINT],
        ["deploy", "fraud-detector@default", "--endpoint", DEMO_ENDPOINT, "--traffic", "10"],
    ):
        print(f"\n$ registrar {' '.join(argv)}", flush=True)
        if registrar(argv) != 0:
            raise SystemExit(f"demo: `registrar {' '.join(argv)}` failed (see above)")


if __name__ == "__main__":
    main()
