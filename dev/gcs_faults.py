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


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self.lost: list[str] = []  # "METHOD path" of every request whose reply was dropped
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
        with self._lock:
            self._rules.append(_Rule(method.upper(), path_contains, times))

    def _should_lose(self, method: str, path: str) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.remaining and rule.method == method and rule.path_contains in path:
                    rule.remaining -= 1
                    self.lost.append(f"{method} {path}")
                    return True
        return False

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(*proxy._upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                data = reply.read()
                conn.close()
                if proxy._should_lose(self.command, self.path):
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

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        return Handler
