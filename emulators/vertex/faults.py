"""Fault injection, driven only through the admin path (`/_emulator/faults`), never the API.

A fault is `{"method": "UploadModel", "count": 2, "status": 503}`: the next `count` calls of
`method` (or `"*"`) fail with `status`. `"when": "after"` applies the call first and then answers
with the error, which is how a response lost on the way back looks to a client.
`{"latency_ms": 200, "method": "*"}` delays every matching call.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from emulators.vertex.errors import STATUS_NAMES, ApiError, invalid

METHODS = (
    "UploadModel",
    "GetModel",
    "ListModels",
    "ListModelVersions",
    "MergeVersionAliases",
    "DeleteModelVersion",
    "DeleteModel",
    "GetOperation",
    "ImportModelEvaluation",
    "GetModelEvaluation",
    "ListModelEvaluations",
    # EndpointService (endpoints.py)
    "CreateEndpoint",
    "GetEndpoint",
    "ListEndpoints",
    "UpdateEndpoint",
    "DeleteEndpoint",
    "DeployModel",
    "UndeployModel",
    "MutateDeployedModel",
    "Predict",
)
_MESSAGES = {
    429: "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline exceeded.",
}


@dataclass
class Fault:
    method: str
    status: int
    count: int
    when: str = "before"
    message: str = ""

    def error(self) -> ApiError:
        return ApiError(self.status, self.message or _MESSAGES.get(self.status, "Injected fault."))


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._latency: dict[str, float] = {}

    def add(self, spec: dict[str, Any]) -> None:
        method = spec.get("method", "*")
        if method != "*" and method not in METHODS:
            raise invalid(f"Unknown method {method!r}; expected one of {', '.join(METHODS)} or *.")
        with self._lock:
            if "latency_ms" in spec:
                self._latency[method] = float(spec["latency_ms"]) / 1000.0
            if "status" in spec:
                status = int(spec["status"])
                if status not in STATUS_NAMES:
                    raise invalid(f"Unsupported status {status}.")
                when = spec.get("when", "before")
                if when not in ("before", "after"):
                    raise invalid("`when` must be 'before' or 'after'.")
                count = int(spec.get("count", 1))
                self._faults.append(
                    Fault(method, status, count, when, str(spec.get("message", "")))
                )

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def take(self, method: str, when: str) -> ApiError | None:
        """Consume one matching fault, if any; sleep the configured latency on `before`."""
        with self._lock:
            delay = self._latency.get(method, self._latency.get("*", 0.0))
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.when == when and f.count > 0 and f.method in (method, "*")
                ),
                None,
            )
            if fault is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self._faults.remove(fault)
        if when == "before" and delay:
            time.sleep(delay)
        return fault.error() if fault else None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "faults": [asdict(f) for f in self._faults],
                "latency_ms": {m: s * 1000 for m, s in self._latency.items()},
            }
