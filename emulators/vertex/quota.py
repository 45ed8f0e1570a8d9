"""Vertex's request quota on long-running-operation submissions, off unless asked for.

"Job or long-running operation (LRO) submission requests: 60 per minute", per project and per
region (cloud.google.com/vertex-ai/docs/quotas, "Request quotas"). Over it, Google answers HTTP 429
RESOURCE_EXHAUSTED with a `google.rpc.ErrorInfo` detail (reason `RATE_LIMIT_EXCEEDED`).

The emulator counts a submission when the request reaches an LRO method (UploadModel,
DeleteModelVersion, DeleteModel, and the EndpointService LROs), before the request is validated,
as a quota front end does; a refused (429) submission is not counted. The window is a sliding
60 seconds of an injectable clock (`time.monotonic` by default), so tests need not sleep.

Off by default, so suites that upload many models are not throttled: enable it with
`--quota-per-minute N`, `start_in_thread(quota_per_minute=N)` or
`POST /_emulator/config {"quota_per_minute": N}` (0 or null turns it off).

While it is enforced, the emulator also keeps what a test needs to judge a client's pacing:
`GET /_emulator/quota` (`AdminClient.quota()`) answers, per `project/location`, the clock times of
the accepted submissions (`accepted`, at most `LOG_LIMIT` kept), how many were refused with 429
(`refused`), and the most accepted in any 60 s window (`peak`). `POST /_emulator/reset` forgets
them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from emulators.vertex.errors import ApiError, invalid

VERTEX_LRO_QUOTA_PER_MINUTE = 60  # the documented default, for callers that want the real value
WINDOW_SECONDS = 60.0
LOG_LIMIT = 100_000  # accepted submissions remembered per project and region for the read-out
# RPC names (as the routes name them) that submit a long-running operation.
LRO_METHODS = frozenset(
    {
        "UploadModel",
        "DeleteModelVersion",
        "DeleteModel",
        # EndpointService (emulators/vertex/endpoints.py)
        "CreateEndpoint",
        "DeleteEndpoint",
        "DeployModel",
        "UndeployModel",
        "MutateDeployedModel",
        "UpdateEndpointLongRunning",
    }
)
_METRIC = "aiplatform.googleapis.com/job_or_lro_submission_requests"  # name not documented
_LIMIT = "JobOrLroSubmissionRequestsPerMinutePerProjectPerRegion"  # name not documented

Clock = Callable[[], float]


def check_rate(value: Any) -> int | None:
    """`None`/0: off; otherwise a positive number of submissions per minute."""
    if value is None:
        return None
    try:
        rate = int(value)
    except (TypeError, ValueError):
        raise invalid(f"quota_per_minute must be a whole number, not {value!r}.") from None
    if rate < 0:
        raise invalid("quota_per_minute must not be negative.")
    return rate or None


class LroQuota:
    """Submissions per (project, location) in the last `WINDOW_SECONDS` of `clock`."""

    def __init__(self, per_minute: int | None = None, clock: Clock | None = None) -> None:
        self._lock = threading.Lock()
        self.per_minute = check_rate(per_minute)
        self.clock: Clock = clock or time.monotonic
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._accepted: dict[tuple[str, str], deque[float]] = {}
        self._refused: Counter[tuple[str, str]] = Counter()

    def set_rate(self, per_minute: Any) -> None:
        with self._lock:
            self.per_minute = check_rate(per_minute)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
            self._accepted.clear()
            self._refused.clear()

    def admit(self, rpc: str, project: str, location: str) -> None:
        """Count one submission of `rpc`, or raise 429 if the window is full."""
        if rpc not in LRO_METHODS:
            return
        with self._lock:
            limit = self.per_minute
            if limit is None:
                return
            stamp = self.clock()
            seen = self._seen.setdefault((project, location), deque())
            while seen and seen[0] <= stamp - WINDOW_SECONDS:
                seen.popleft()
            if len(seen) >= limit:
                self._refused[(project, location)] += 1
                raise exhausted(project, location, limit)
            seen.append(stamp)
            log = self._accepted.setdefault((project, location), deque(maxlen=LOG_LIMIT))
            log.append(stamp)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "quota_per_minute": self.per_minute,
                "quota_used": {f"{p}/{loc}": len(s) for (p, loc), s in self._seen.items()},
            }

    def usage(self) -> dict[str, Any]:
        """The read-out: accepted submissions' clock times, 429s, and the busiest window."""
        with self._lock:
            accepted = {f"{p}/{loc}": list(log) for (p, loc), log in self._accepted.items()}
            refused = {f"{p}/{loc}": n for (p, loc), n in self._refused.items()}
            limit = self.per_minute
        return {
            "quota_per_minute": limit,
            "window_seconds": WINDOW_SECONDS,
            "accepted": accepted,
            "refused": refused,
            "peak": {key: peak(stamps) for key, stamps in accepted.items()},
        }


def peak(stamps: list[float]) -> int:
    """The most submissions in any window of `WINDOW_SECONDS` (as `admit` counts: a stamp
    leaves the window once it is `WINDOW_SECONDS` old)."""
    ordered, most, first = sorted(stamps), 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - WINDOW_SECONDS:
            first += 1
        most = max(most, last - first + 1)
    return most


def exhausted(project: str, location: str, limit: int) -> ApiError:
    """Google's quota error: 429 RESOURCE_EXHAUSTED with ErrorInfo and a Help link."""
    message = (
        "Quota exceeded for quota metric 'Job or long-running operation (LRO) submission "
        "requests' and limit 'Job or LRO submission requests per minute per region' of service "
        f"'aiplatform.googleapis.com' for consumer 'projects/{project}' in region {location} "
        f"(limit {limit} per minute)."
    )
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": "aiplatform.googleapis.com",
                "consumer": f"projects/{project}",
                "quota_metric": _METRIC,
                "quota_limit": _LIMIT,
                "quota_limit_value": str(limit),
                "quota_location": location,
            },
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Request a higher quota limit.",
                    "url": "https://cloud.google.com/docs/quotas/help/request_increase",
                }
            ],
        },
    ]
    return ApiError(429, message, "RESOURCE_EXHAUSTED", details)
