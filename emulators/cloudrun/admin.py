"""A small client for the emulator's admin path (`/_emulator/*`), for tests and the dev stack."""

from __future__ import annotations

from typing import Any

from emulators.jsonhttp import send_json


class AdminClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.url = base_url.rstrip("/")
        self._timeout = timeout

    def kill_on_output(self, text: str, count: int = 1) -> None:
        """The next `count` task attempts that print `text` are killed there (SIGKILL)."""
        self._send("POST", "/_emulator/faults", {"kill_on_output": text, "count": count})

    def clear_faults(self) -> None:
        self._send("DELETE", "/_emulator/faults")

    def attempts(self) -> list[dict[str, Any]]:
        """Every task attempt so far: execution, index, attempt, exit_code, killed, output."""
        return self._send("GET", "/_emulator/tasks")["attempts"]

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return send_json(self.url + path, method, body, self._timeout)
