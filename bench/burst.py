"""5. A burst through one instance: distinct small-model uploads mixed with unrelated objects (and
some duplicate deliveries), delivered concurrently; every model must be registered exactly once."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.build import build_in_child
from bench.common import Metric, Result, log
from bench.services import BenchStack, LightClient
from bench.small_model import SMALL, ReferenceWorker
from bench.unrelated import unrelated_names

CONCURRENCY = 8
DUPLICATE_SHARE = 0.1  # Eventarc delivers at least once: redeliver a tenth of the model events


def run(quick: bool) -> Result:
    result = Result("burst", "Burst: small models + unrelated objects through one instance")
    n_names, n_versions, n_unrelated = (3, 2, 60) if quick else (50, 4, 2000)
    n_models = n_names * n_versions
    bench = BenchStack.start()
    try:
        specs = [
            {"kind": "keras", "path": bench.root / "m" / f"{i}.keras", "bytes": SMALL, "seed": i}
            for i in range(n_models)
        ]
        log(f"burst: building {n_models} models")
        build_in_child(specs)
        function = bench.start_function("burst")
        models = []
        for i, spec in enumerate(specs):
            name = f"models/burst-{i % n_names}/v{i // n_names}/model.keras"
            models.append(bench.upload_file(name, spec["path"]))
        unrelated = [bench.upload_bytes(n, b"x" * 64) for n in unrelated_names(n_unrelated)]
        log(f"burst: delivering {n_models} model + {n_unrelated} unrelated events")
        stats = _deliver_all(function.url, models, unrelated)
        versions = bench.vertex_versions()
        reference = ReferenceWorker(bench.vertex.url)
        log("burst: reference (warm load + UploadModel for each model, sequential)")
        ref_started = time.perf_counter()
        for i, spec in enumerate(specs):
            reference.run(spec["path"], f"ref-{i % n_names}", f"gs://{bench.bucket}/ref/{i}/")
        ref_seconds = time.perf_counter() - ref_started
        reference.stop()
        entries = function.log_entries()
        outcomes = Counter(str(e.get("outcome")) for e in entries if "outcome" in e)
        errors = [str(e.get("message"))[:300] for e in entries if e.get("severity") == "ERROR"]
        raw = (function.log_dir / "function.log").read_text(errors="replace").splitlines()
        tracebacks = [line[:300] for line in raw if line and not line.startswith("{")]
    finally:
        bench.stop()
    counts = Counter()
    uris = {f"gs://{m['bucket']}/{m['name']}" for m in models}
    for version in versions:
        text = version.get("versionDescription", "") + " " + version.get("description", "")
        hits = [u for u in uris if u in text]
        counts.update(hits)
    once = sum(1 for u in uris if counts[u] == 1)
    result.facts.update(
        {
            "model_uploads": n_models,
            "unrelated_objects": n_unrelated,
            "duplicate_deliveries": stats["duplicates"],
            "concurrent_clients": CONCURRENCY,
            "versions_in_registry": len(versions),
            "models_registered_exactly_once": once,
            "models_never_registered": sum(1 for u in uris if counts[u] == 0),
            "models_registered_more_than_once": sum(1 for u in uris if counts[u] > 1),
            "http_statuses": stats["statuses"],
            "redeliveries_after_5xx": stats["retries"],
            "logged_outcomes": dict(outcomes),
            "first_logged_errors": errors[:3],
            "non_json_log_lines": tracebacks[-6:],
        }
    )
    if once != n_models or len(versions) != n_models:
        raise AssertionError(
            f"exactly-once violated: {once}/{n_models} registered exactly once, "
            f"{len(versions)} versions in the registry"
        )
    result.add(
        Metric(
            f"whole burst ({n_models} models + {n_unrelated} unrelated) wall time",
            "s",
            [stats["seconds"]],
            [ref_seconds],
            f"{n_models} x (keras load + UploadModel), one warm process, sequential",
        )
    )
    result.add(
        Metric(
            "model event -> registered during the burst (client round trip)",
            "s",
            stats["model_rtt"],
        )
    )
    result.add(
        Metric(
            "unrelated event round trip during the burst",
            "s",
            stats["unrelated_rtt"],
            note="served on other threads while models validate",
        )
    )
    result.add(
        Metric(
            "models registered per minute",
            "models/min",
            [n_models / stats["seconds"] * 60],
            [n_models / ref_seconds * 60],
            "same reference",
            better="higher",
        )
    )
    result.notes += [
        f"{n_models} distinct ~1 MB `.keras` uploads ({n_names} model names x {n_versions} "
        f"versions) and {n_unrelated} unrelated objects, all in fake-gcs-server first; their "
        f"events, plus a redelivery (same event id) of {DUPLICATE_SHARE:.0%} of the model "
        f"events, shuffled and POSTed by {CONCURRENCY} concurrent keep-alive clients to one "
        "functions-framework server. A non-2xx answer is redelivered after 1 s, as the "
        "platform would (with longer backoff).",
        "Exactly-once is checked in the Vertex emulator: every upload's gs:// URI appears in "
        "exactly one version's description and the registry holds exactly one version per upload "
        "(the run fails otherwise).",
        "Median of the registered-per-event latency is dominated by queueing: validation is "
        "serialised on the instance's one sandbox worker.",
    ]
    return result


def _deliver_all(
    url: str, models: list[dict[str, Any]], unrelated: list[dict[str, Any]]
) -> dict[str, Any]:
    rng = random.Random(6)
    jobs = [("model", m, f"burst-m{i}") for i, m in enumerate(models)]
    jobs += [("unrelated", u, f"burst-u{i}") for i, u in enumerate(unrelated)]
    dupes = rng.sample(jobs[: len(models)], max(1, int(len(models) * DUPLICATE_SHARE)))
    jobs += [("duplicate", m, event_id) for _, m, event_id in dupes]
    rng.shuffle(jobs)
    local = threading.local()
    lock = threading.Lock()
    rtt: dict[str, list[float]] = {"model": [], "unrelated": [], "duplicate": []}
    statuses: Counter[str] = Counter()
    retries = 0

    def one(job: tuple[str, dict[str, Any], str]) -> None:
        nonlocal retries
        kind, resource, event_id = job
        if not hasattr(local, "client"):
            local.client = LightClient(url)
        for attempt in range(6):
            status, seconds, _ = local.client.deliver(resource, event_id)
            with lock:
                statuses[str(status)] += 1
                if status < 300:
                    rtt[kind].append(seconds)
                    return
                retries += 1
            time.sleep(1.0 * (attempt + 1))
        raise RuntimeError(f"{resource['name']} still failing after 6 deliveries")

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, jobs))
    seconds = time.perf_counter() - started
    log(
        f"burst: {seconds:.1f} s; model rtt median {statistics.median(rtt['model']):.2f} s; "
        f"statuses {dict(statuses)}"
    )
    return {
        "seconds": seconds,
        "model_rtt": rtt["model"],
        "unrelated_rtt": rtt["unrelated"],
        "duplicates": len(dupes),
        "statuses": dict(statuses),
        "retries": retries,
    }
