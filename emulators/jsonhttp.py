"""The HTTP plumbing both emulators share: reading a JSON request body, writing a JSON reply, and
the admin clients' JSON request. Each emulator keeps its own routes and Google error format."""

from __future__ import annotations

import json
import urllib.request
from http.server import BaseHTTPRequestHandler
from typing import Any


class BadJson(ValueError):
    """The request body is not a JSON object (each emulator answers it in its own error format)."""


class JsonHandler(BaseHTTPRequestHandler):
    """Every method goes to `_dispatch(method)`, which each emulator routes its own way (a
    method it has no route for is its usual 404/405)."""

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            data = json.loads(self.rfile.read(length))
        except ValueError:
            raise BadJson("Invalid JSON payload received.") from None
        if not isinstance(data, dict):
            raise BadJson("Invalid JSON payload received: expected an object.")
        return data

    def _reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def send_json(url: str, method: str, body: dict[str, Any] | None, timeout: float) -> Any:
    """One admin request: `body` as JSON, the reply parsed ({} when empty)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return json.loads(reply.read() or b"{}")
