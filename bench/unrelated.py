"""2. Unrelated and non-model objects: per-event cost and events/s, in process and over HTTP,
against a do-nothing CloudEvent function served by the same functions-framework."""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import ROOT, Metric, Result, log
from bench.services import BenchStack, LightClient
from dev.bridge import binary_event

CONCURRENCY = 8  # functions-framework's gunicorn serves 4 threads per core (8 here)
_KINDS = (
    "logs/app-{i}.log",  # outside MODEL_PREFIX
    "models/team-{i}/README.md",  # under the prefix, not a model
    "models/team-{i}/eval/metrics.json",
    "models/team-{i}/",  # folder placeholder
)


def unrelated_names(count: int, offset: int = 0) -> list[str]:
    return [_KINDS[i % len(_KINDS)].format(i=offset + i) for i in range(count)]


def run(quick: bool) -> Result:
    result = Result("unrelated", "Unrelated and non-model objects: per-event cost and events/s")
    n_objects, n_seq, n_conc, n_inproc = (20, 60, 200, 500) if quick else (200, 600, 3000, 10000)
    bench = BenchStack.start()
    try:
        ours = bench.start_function("ours")
        noop = bench.start_function("noop", source=ROOT / "bench" / "noop_main.py")
        resources = [bench.upload_bytes(n, b"x" * 64) for n in unrelated_names(n_objects)]
        log(f"unrelated: {len(resources)} objects uploaded; sequential over HTTP")
        seq = {f.log_dir.name: _sequential(f.url, resources, n_seq) for f in (ours, noop)}
        server_side = _server_elapsed(ours, seq["ours"]["ids"])
        log("unrelated: concurrent over HTTP")
        conc = {f.log_dir.name: _concurrent(f.url, resources, n_conc) for f in (ours, noop)}
        log("unrelated: in process (Pipeline.handle)")
        inproc, naive = _in_process(bench, resources, n_inproc)
    finally:
        bench.stop()
    result.facts["statuses_ours"] = seq["ours"]["statuses"] | conc["ours"]["statuses"]
    result.facts["statuses_reference"] = seq["noop"]["statuses"] | conc["noop"]["statuses"]
    result.facts["object_kinds"] = [k.format(i="N") for k in _KINDS]
    result.add(
        Metric(
            "server-side time per event (log line elapsed_s, warm, HTTP)",
            "s",
            server_side,
            target="<= 1 ms median",
            check=lambda m: m["median"] <= 0.001,
            note="elapsed_s is logged rounded to 0.1 ms: 0 means < 0.05 ms",
            resolution=0.0001,
        )
    )
    result.add(
        Metric(
            "client round trip per event (keep-alive, one at a time)",
            "s",
            seq["ours"]["rtt"],
            seq["noop"]["rtt"],
            "do-nothing CloudEvent function, same functions-framework server",
        )
    )
    result.add(
        Metric(
            f"events/s over HTTP ({CONCURRENCY} keep-alive clients)",
            "events/s",
            conc["ours"]["rates"],
            conc["noop"]["rates"],
            "do-nothing CloudEvent function, same server and clients",
            better="higher",
            target=">= 2,000 events/s",
            check=lambda m: m["median"] >= 2000,
        )
    )
    result.add(
        Metric(
            "Pipeline.handle per event (in process, no HTTP)",
            "s",
            inproc["times"],
            naive["times"],
            "bare prefix check on the parsed event (the least any handler does)",
        )
    )
    result.add(
        Metric(
            "events/s in process (Pipeline.handle, one thread)",
            "events/s",
            inproc["rates"],
            better="higher",
            target=">= 2,000 events/s",
            check=lambda m: m["median"] >= 2000,
        )
    )
    result.notes += [
        f"Objects: {n_objects} real objects in fake-gcs-server, four kinds (see facts), delivered "
        "as binary-mode `object.v1.finalized` CloudEvents with fresh event ids.",
        f"Sequential: {n_seq} events one at a time over one keep-alive connection after 20 "
        "warm-up events; server-side time is the `elapsed_s` of the function's JSON log line "
        "for that event id (LOG_LEVEL=DEBUG so ignored objects log a line; at INFO they log "
        "nothing and cost slightly less).",
        f"Throughput over HTTP: {n_conc} events from {CONCURRENCY} threads with one keep-alive "
        "session each, wall time of the whole batch, 3 batches; the client shares the 2 cores "
        "with the server, so this is a lower bound of what the server alone sustains.",
        f"In process: {n_inproc} calls of `Pipeline.handle(attributes, data)` in this process "
        "with JSON logging to /dev/null; events/s = calls / wall time, 3 batches.",
    ]
    return result


def _sequential(url: str, resources: list[dict[str, Any]], count: int) -> dict[str, Any]:
    client = LightClient(url)
    for i in range(20):
        client.deliver(resources[i % len(resources)])
    rtt, ids, statuses = [], [], {}
    for i in range(count):
        status, seconds, event_id = client.deliver(resources[i % len(resources)])
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        rtt.append(seconds)
        ids.append(event_id)
    client.close()
    return {"rtt": rtt, "ids": ids, "statuses": statuses}


def _concurrent(url: str, resources: list[dict[str, Any]], count: int) -> dict[str, Any]:
    local = threading.local()
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = LightClient(url)
        status, _, _ = local.client.deliver(resources[i % len(resources)])
        with lock:
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    rates = []
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(CONCURRENCY * 4)))  # open the connections
        for _ in range(3):
            started = time.perf_counter()
            list(pool.map(one, range(count)))
            rates.append(count / (time.perf_counter() - started))
    return {"rates": rates, "statuses": statuses}


def _server_elapsed(function: Any, ids: list[str]) -> list[float]:
    time.sleep(0.3)  # let the last lines reach the log file
    entries = function.by_event()
    missing = [i for i in ids if i not in entries or "elapsed_s" not in entries[i]]
    if missing:
        raise RuntimeError(f"{len(missing)} events have no log line with elapsed_s")
    return [float(entries[i]["elapsed_s"]) for i in ids]


def _in_process(
    bench: BenchStack, resources: list[dict[str, Any]], count: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    from handlers.logs import configure
    from handlers.pipeline import Pipeline
    from handlers.settings import Settings

    settings = Settings.from_env(bench.function_env())
    logger = configure("DEBUG")
    sink = open(os.devnull, "w")
    old = [h.setStream(sink) for h in logger.handlers if hasattr(h, "setStream")]
    pipeline = Pipeline(settings)
    events = []
    for i in range(count):
        headers, body = binary_event(resources[i % len(resources)])
        attrs = {k[3:]: v for k, v in headers.items() if k.startswith("ce-")}
        events.append((attrs, json.loads(body)))
    prefix = settings.model_prefix

    def naive(attrs: dict[str, Any], data: dict[str, Any]) -> bool:
        name = data["name"]
        return name.startswith(prefix) and name.endswith(".keras")

    try:
        out = {}
        for label, handler in (("ours", pipeline.handle), ("naive", naive)):
            for attrs, data in events[:50]:
                handler(attrs, data)
            times, rates = [], []
            for _ in range(3):
                begun = time.perf_counter()
                for attrs, data in events:
                    t = time.perf_counter()
                    handler(attrs, data)
                    times.append(time.perf_counter() - t)
                rates.append(len(events) / (time.perf_counter() - begun))
            out[label] = {"times": times, "rates": rates}
        outcomes = {pipeline.handle(a, d).outcome for a, d in events[:8]}
    finally:
        for h, stream in zip(logger.handlers, old, strict=False):
            h.setStream(stream)
        sink.close()
    if outcomes != {"ignored"}:
        raise RuntimeError(f"unrelated objects were not all ignored: {outcomes}")
    return out["ours"], out["naive"]
