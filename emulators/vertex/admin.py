"""A small client for the emulator's admin path (`/_emulator/*`), for tests and the dev stack."""

from __future__ import annotations

from typing import Any

from emulators.jsonhttp import send_json

_UNSET: Any = object()  # "not given", as opposed to None ("off")


class AdminClient:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.url = base_url.rstrip("/")
        self._timeout = timeout

    def fault(self, method: str, status: int, count: int = 1, *, when: str = "before") -> None:
        """The next `count` calls of `method` ("*" for any) fail with HTTP `status`."""
        body = {"method": method, "status": status, "count": count, "when": when}
        self._send("POST", "/_emulator/faults", body)

    def clear_faults(self) -> None:
        """Vertex recovers: every injected fault and latency ends."""
        self._send("DELETE", "/_emulator/faults")

    def latency(self, method: str, milliseconds: float) -> None:
        self._send("POST", "/_emulator/faults", {"method": method, "latency_ms": milliseconds})

    def config(
        self,
        *,
        operation_polls: int | None = None,
        quota_per_minute: Any = _UNSET,
        deploy_seconds: float | None = None,
        concurrent_mutations: str | None = None,
        today: Any = _UNSET,
    ) -> dict[str, Any]:
        """Set what is given; returns the resulting config.

        `operation_polls`: operations answer `done: false` to this many GetOperation calls
        before completing. `quota_per_minute=N`: at most N long-running-operation submissions
        per minute per project and region, 429 RESOURCE_EXHAUSTED over it (Vertex: 60);
        `quota_per_minute=None` (or 0) turns the quota off. `deploy_seconds`: DeployModel and
        UndeployModel land that long after they start. `concurrent_mutations`: `reject` or
        `last_writer_wins` (a second endpoint mutation while one runs).
        `today="2027-01-15"`: the date serving images' end of availability is judged on (None: the
        real date; reset restores the startup value).
        """
        body: dict[str, Any] = {}
        if operation_polls is not None:
            body["operation_polls"] = operation_polls
        if quota_per_minute is not _UNSET:
            body["quota_per_minute"] = quota_per_minute
        if deploy_seconds is not None:
            body["deploy_seconds"] = deploy_seconds
        if concurrent_mutations is not None:
            body["concurrent_mutations"] = concurrent_mutations
        if today is not _UNSET:
            body["today"] = str(today) if today is not None else None
        return self._send("POST", "/_emulator/config", body)

    def state(self) -> dict[str, Any]:
        return self._send("GET", "/_emulator/state")

    def quota(self) -> dict[str, Any]:
        """While the LRO quota is enforced, per `project/location`: `accepted` (the emulator's
        clock times of the admitted submissions), `refused` (how many got 429) and `peak` (the
        most admitted in any 60 s window); also `quota_per_minute` and `window_seconds`."""
        return self._send("GET", "/_emulator/quota")

    def reset(self) -> None:
        """Forget all models, operations, faults, call counts and quota usage; operations complete
        at once; the quota rate returns to the emulator's startup value."""
        self._send("POST", "/_emulator/reset")
        self.config(operation_polls=0)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return send_json(self.url + path, method, body, self._timeout)
