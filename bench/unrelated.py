"""2. Unrelated and non-model objects: per-event cost and events/s, in process and over HTTP,
against a do-nothing CloudEvent function served by the same functions-framework."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any

from bench.common import PYTHON, ROOT, Metric, Result, log
from bench.services import BenchStack, LightClient
from dev.bridge import binary_event

CONNECTIONS = 8  # as many as functions-framework's gunicorn has threads (4 per core) here
_KINDS = (
    "logs/app-{i}.log",  # outside MODEL_PREFIX
    "models/team-{i}/README.md",  # under the prefix, not a model
    "models/team-{i}/eval/results.csv",  # (a metrics.json is the metrics of an upload)
    "models/team-{i}/",  # folder placeholder
)


def unrelated_names(count: int, offset: int = 0) -> list[str]:
    return [_KINDS[i % len(_KINDS)].format(i=offset + i) for i in range(count)]


def run(quick: bool) -> Result:
    result = Result("unrelated", "Unrelated and non-model objects: per-event cost and events/s")
    n_objects, n_seq, n_conc, n_inproc = (20, 60, 200, 500) if quick else (200, 600, 3000, 10000)
    bench = BenchStack.start()
    noop_source = ROOT / "bench" / "noop_main.py"
    try:
        ours = bench.start_function("ours")
        noop = bench.start_function("noop", source=noop_source)
        resources = [bench.upload_bytes(n, b"x" * 64) for n in unrelated_names(n_objects)]
        log(f"unrelated: {len(resources)} objects uploaded; sequential over HTTP")
        seq = {f.log_dir.name: _sequential(f.url, resources, n_seq) for f in (ours, noop)}
        server_side = _server_elapsed(ours, seq["ours"]["ids"])
        ours.stop()
        # Throughput at the default LOG_LEVEL=INFO: an ignored object writes no log line.
        ours = bench.start_function("ours-info", LOG_LEVEL="INFO")
        log("unrelated: concurrent over HTTP")
        conc = {
            k: _concurrent(f.url, resources, n_conc) for k, f in (("ours", ours), ("noop", noop))
        }
        for function in (ours, noop):
            function.stop()
        wsgi = {
            "ours": bench.start_function("ours-wsgi", FUNCTION_USE_ASGI="false", LOG_LEVEL="INFO"),
            "noop": bench.start_function(
                "noop-wsgi", source=noop_source, FUNCTION_USE_ASGI="false"
            ),
        }
        log("unrelated: concurrent over HTTP, FUNCTION_USE_ASGI=false")
        conc_wsgi = {k: _concurrent(f.url, resources, n_conc) for k, f in wsgi.items()}
        log("unrelated: in process (Pipeline.handle)")
        inproc, naive = _in_process(bench, resources, n_inproc)
    finally:
        bench.stop()
    result.facts["statuses_ours"] = _merged(
        seq["ours"]["statuses"], conc["ours"]["statuses"], conc_wsgi["ours"]["statuses"]
    )
    result.facts["statuses_reference"] = _merged(
        seq["noop"]["statuses"], conc["noop"]["statuses"], conc_wsgi["noop"]["statuses"]
    )
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
            f"events/s over HTTP ({CONNECTIONS} keep-alive connections)",
            "events/s",
            conc["ours"]["rates"],
            conc["noop"]["rates"],
            "do-nothing CloudEvent function, same server and load generator",
            better="higher",
            target=">= 2,000 events/s",
            check=lambda m: m["median"] >= 2000,
        )
    )
    result.add(
        Metric(
            "same, with FUNCTION_USE_ASGI=false (gunicorn + Flask)",
            "events/s",
            conc_wsgi["ours"]["rates"],
            conc_wsgi["noop"]["rates"],
            "do-nothing CloudEvent function on that server",
            better="higher",
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
        "Servers: functions-framework as deployed (FUNCTION_USE_ASGI=true: uvicorn with httptools "
        "and uvloop; main.py settles non-model events on the event loop), and, for comparison, "
        "FUNCTION_USE_ASGI=false (gunicorn's threaded worker + Flask), each against a do-nothing "
        "function on the same server.",
        f"Throughput over HTTP: at the default LOG_LEVEL=INFO (an ignored object writes no log "
        "line; at DEBUG each writes one JSON line, which costs more than handling it); "
        f"{n_conc} events over {CONNECTIONS} keep-alive connections from "
        "`bench/loadgen.py`, an asyncio client in its own process that pre-encodes the requests; "
        "wall time of the whole batch, 3 batches after a warm-up. The client shares the 2 cores "
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
    """`bench/loadgen.py` in its own process: the same binary-mode events, pre-encoded."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump([[h, b.decode()] for h, b in map(binary_event, resources)], handle)
    try:
        done = subprocess.run(
            [PYTHON, "-m", "bench.loadgen", url, handle.name, str(count), str(CONNECTIONS), "3"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
    finally:
        os.unlink(handle.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _merged(*counts: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for status, n in one.items():
            total[status] = total.get(status, 0) + n
    return total


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
