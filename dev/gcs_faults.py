"""A fault-injecting HTTP proxy in front of fake-gcs-server (development and tests only).

fake-gcs-server has no fault injection, and the failure that matters most for idempotency is the
one a mock cannot show honestly: the server *commits* a write but the reply never arrives. This
proxy forwards every request unchanged and, for requests matching an armed rule, forwards it,
lets the server answer, and then drops the connection instead of relaying the answer.

    proxy = FaultProxy(storage_url); proxy.start()
    proxy.lose_reply(method="POST", path_contains="/upload/", times=1)
    ... point STORAGE_EMULATOR_HOST at proxy.url ...
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class _Rule:
    method: str
    path_contains: str
    remaining: int
    status: int = 0  # 0: forward, then lose the reply; else: answer this status, forward nothing


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.lost: list[str] = []  # "METHOD path" of every request whose reply was dropped
        self.refused: list[str] = []  # ... and of every request answered with an injected error
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def lose_reply(self, *, method: str, path_contains: str, times: int = 1) -> None:
        """Forward matching requests (path or body contains `path_contains`), drop the reply."""
        with self._lock:
            self._rules.append(_Rule(method.upper(), path_contains, times))

    def fail(self, *, method: str, path_contains: str, status: int, times: int = 1) -> None:
        """Answer matching requests with `status` (Google's error JSON) without forwarding them."""
        with self._lock:
            self._rules.append(_Rule(method.upper(), path_contains, times, status))

    def _match(self, method: str, path: str, body: bytes, *, refusing: bool) -> _Rule | None:
        # A multipart upload names its object in the body, not the path: match either.
        where = path + "\n" + body[:4096].decode("latin-1")
        with self._lock:
            for rule in self._rules:
                if (
                    rule.remaining
                    and bool(rule.status) is refusing
                    and rule.method == method
                    and rule.path_contains in where
                ):
                    rule.remaining -= 1
                    (self.refused if refusing else self.lost).append(f"{method} {path}")
                    return rule
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                refusal = proxy._match(self.command, self.path, body or b"", refusing=True)
                if refusal is not None:
                    self._refuse(refusal.status)
                    return
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                conn.close()
                if proxy._match(self.command, self.path, body or b"", refusing=False) is not None:
                    self.close_connection = True
                    self.connection.close()  # the server committed; the client hears nothing
                    return
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refuse(self, status: int) -> None:
                error = {
                    "code": status,
                    "message": "injected by dev/gcs_faults.py",
                    "errors": [{"reason": "forbidden" if status == 403 else "error"}],
                }
                data = json.dumps({"error": error}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler
