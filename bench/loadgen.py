"""A lean HTTP/1.1 load generator for the events/s benchmark, run in its own process.

The server shares two cores with its client, so every microsecond the client spends is taken from
the server. This client pre-encodes each CloudEvent once (only `ce-id` changes per request) and
drives N keep-alive connections from one asyncio loop: a few µs per request instead of the
~100 µs of `http.client` plus a GIL shared with the bench.

Usage: python -m bench.loadgen URL EVENTS_JSON COUNT CONNECTIONS BATCHES
EVENTS_JSON is a list of [headers, body] pairs (as `dev.bridge.binary_event` returns them).
Prints one JSON line: {"rates": [...], "statuses": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from itertools import count as counter
from urllib.parse import urlsplit


def _templates(events: list[list]) -> list[tuple[bytes, bytes]]:
    """Each event as (request head before the ce-id value, the rest of the request)."""
    out = []
    for headers, body in events:
        data = body.encode()
        lines = [f"{k}: {v}" for k, v in headers.items() if k.lower() != "ce-id"]
        lines.append(f"Content-Length: {len(data)}")
        rest = "\r\n" + "\r\n".join(lines) + "\r\n\r\n"
        out.append((b"POST / HTTP/1.1\r\nHost: bench\r\nce-id: ", rest.encode() + data))
    return out


async def _connection(
    host: str, port: int, jobs: list[int], templates: list, ids: counter, statuses: dict
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for job in jobs:
            head, rest = templates[job % len(templates)]
            writer.write(head + str(next(ids)).encode() + rest)
            reply = await reader.readuntil(b"\r\n\r\n")
            status = reply[9:12].decode()
            length = 0
            for line in reply.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def _run(url: str, events: list[list], total: int, connections: int, batches: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    templates = _templates(events)
    ids = counter(int(time.time() * 1000) * 1000)
    statuses: dict[str, int] = {}

    async def batch(n: int) -> float:
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _connection(host, port, list(range(c, n, connections)), templates, ids, statuses)
                for c in range(connections)
            )
        )
        return time.perf_counter() - started

    await batch(connections * 20)  # warm-up: connections, the server's first-event paths
    warm = dict(statuses)
    rates = [total / await batch(total) for _ in range(batches)]
    measured = {k: v - warm.get(k, 0) for k, v in statuses.items()}
    return {"rates": rates, "statuses": {k: v for k, v in measured.items() if v}}


def main() -> None:
    url, events_file, total, connections, batches = sys.argv[1:6]
    with open(events_file) as handle:
        events = json.load(handle)
    result = asyncio.run(_run(url, events, int(total), int(connections), int(batches)))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
