"""A tiny GCS JSON API stand-in whose objects have *declared* sizes (no bytes behind them).

fake-gcs-server stores real bytes, so it cannot hold a 10 GB model directory; this stub answers the
two calls the Vertex emulator's artifact check makes - `GET /storage/v1/b/B` (bucket, location)
and `GET /storage/v1/b/B/o?prefix=&pageToken=` (objects with `size`) - from a dict.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PAGE = 2  # tiny pages, so the emulator's paging is exercised


class StubGcs(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, buckets: dict[str, tuple[str, dict[str, int]]]) -> None:
        """`buckets`: name -> (location as GCS reports it, {object name: size in bytes})."""
        super().__init__(("127.0.0.1", 0), _Handler)
        self.buckets = buckets
        threading.Thread(target=self.serve_forever, name="stub-gcs", daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: StubGcs

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if parts[:3] != ["storage", "v1", "b"] or len(parts) not in (4, 5):
            self._reply(404, {"error": {"code": 404, "message": "Not Found"}})
            return
        bucket = self.server.buckets.get(parts[3])
        if bucket is None:
            self._reply(404, {"error": {"code": 404, "message": "The bucket does not exist."}})
            return
        location, objects = bucket
        if len(parts) == 4:
            self._reply(200, {"kind": "storage#bucket", "name": parts[3], "location": location})
            return
        names = sorted(n for n in objects if n.startswith(query.get("prefix", "")))
        start = int(query.get("pageToken") or 0)
        page: dict[str, Any] = {
            "kind": "storage#objects",
            "items": [{"name": n, "size": str(objects[n])} for n in names[start : start + PAGE]],
        }
        if start + PAGE < len(names):
            page["nextPageToken"] = str(start + PAGE)
        self._reply(200, page)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
