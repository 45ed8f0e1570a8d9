"""A small client for the emulator's admin path (`/_emulator/*`), for tests and the dev stack."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


class AdminClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.url = base_url.rstrip("/")
        self._timeout = timeout

    def fault(self, method: str, status: int, count: int = 1, *, when: str = "before") -> None:
        """The next `count` calls of `method` ("*" for any) fail with HTTP `status`."""
        body = {"method": method, "status": status, "count": count, "when": when}
        self._send("POST", "/_emulator/faults", body)

    def latency(self, method: str, milliseconds: float) -> None:
        self._send("POST", "/_emulator/faults", {"method": method, "latency_ms": milliseconds})

    def clear_faults(self) -> None:
        self._send("DELETE", "/_emulator/faults")

    def config(self, *, operation_polls: int) -> None:
        """Operations answer `done: false` to this many GetOperation calls before completing."""
        self._send("POST", "/_emulator/config", {"operation_polls": operation_polls})

    def state(self) -> dict[str, Any]:
        return self._send("GET", "/_emulator/state")

    def reset(self) -> None:
        """Forget all models, operations, faults and call counts; operations complete at once."""
        self._send("POST", "/_emulator/reset")
        self.config(operation_polls=0)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as reply:
            return json.loads(reply.read() or b"{}")
