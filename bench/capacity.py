"""What the function and the job can take (issue 22), from one bench run's large-model
measurements: the largest upload per memory size, and what limits it.

A path's cost is modelled as a fixed part plus a part per GB of upload, both measured:
- function: fixed = the idle warm instance (its processes, the warm sandbox worker, no temp
  files); per GB = its peak above idle and its event -> registered time, per GB of upload (the
  per-upload fixed costs are folded into the per-GB figures, so small sizes overstate them);
- job: the same pipeline in a fresh task process, so the same per-GB figures, plus what a task's
  start adds over a warm instance (TF import, the sandbox worker: measured as the job path's
  peak and time minus the function path's, for the same upload).
Limits: the memory size; the run's timeout (540 s for an event-driven function, 168 h for a
Cloud Run job task); and Vertex's 10 GB per model artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GB = 1_000_000_000
GIB = 1 << 30
VERTEX_MAX_BYTES = 10 * GB
FUNCTION_TIMEOUT_SECONDS = 540.0  # event-driven Cloud Functions (2nd gen) maximum
JOB_TASK_TIMEOUT_SECONDS = 168 * 3600.0  # Cloud Run jobs maximum task timeout
FUNCTION_MEMORY_GIB = (1, 2, 4, 8, 16, 32)
JOB_MEMORY_GIB = (2, 4, 8, 16, 32)


@dataclass(frozen=True)
class PathCost:
    fixed_bytes: float  # memory in use before the upload's bytes arrive
    bytes_per_gb: float  # peak above that, per GB of upload
    fixed_seconds: float
    seconds_per_gb: float
    timeout_seconds: float


def largest(cost: PathCost, memory_bytes: float) -> tuple[float, str]:
    """The largest upload (bytes) `cost`'s path takes in `memory_bytes`, and what limits it."""
    by_memory = max(0.0, (memory_bytes - cost.fixed_bytes) / cost.bytes_per_gb) * GB
    by_time = max(0.0, (cost.timeout_seconds - cost.fixed_seconds) / cost.seconds_per_gb) * GB
    return min(
        (by_memory, "memory"),
        (by_time, "timeout"),
        (float(VERTEX_MAX_BYTES), "Vertex's 10 GB"),
    )


def function_cost(measured: dict[str, Any]) -> PathCost:
    gb = measured["bytes"] / GB
    return PathCost(
        fixed_bytes=measured["idle"],
        bytes_per_gb=(measured["peak"] - measured["idle"]) / gb,
        fixed_seconds=0.0,
        seconds_per_gb=measured["seconds"] / gb,
        timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
    )


def job_cost(measured: dict[str, Any]) -> PathCost:
    """The function's per-GB figures plus what starting a task adds (never negative)."""
    function = function_cost(measured)
    gb = measured["bytes"] / GB
    function_above_idle = measured["peak"] - measured["idle"]
    return PathCost(
        fixed_bytes=max(0.0, measured["job_above_idle"] - function_above_idle),
        bytes_per_gb=function.bytes_per_gb,
        fixed_seconds=max(0.0, measured["job_seconds"] - function.seconds_per_gb * gb),
        seconds_per_gb=function.seconds_per_gb,
        timeout_seconds=JOB_TASK_TIMEOUT_SECONDS,
    )


def _cell(found: tuple[float, str]) -> str:
    size, limit = found
    return f"{size / GB:.2f} GB ({limit})"


def table(measured: dict[str, dict[str, Any]], default_handoff: Any) -> dict[str, Any]:
    """The report's capacity table. `measured`: kind label -> the medians of one size (bytes,
    seconds, peak, idle, job_seconds, job_above_idle); `default_handoff(memory_bytes)`: the
    HANDOFF_BYTES the function derives for an instance of that memory."""
    kinds = list(measured)
    rows = []
    for gib in sorted(set(FUNCTION_MEMORY_GIB) | set(JOB_MEMORY_GIB)):
        memory = gib * GIB
        row = [f"{gib} GiB"]
        for kind in kinds:
            fits = gib in FUNCTION_MEMORY_GIB
            row.append(_cell(largest(function_cost(measured[kind]), memory)) if fits else "–")
        row.append(f"{default_handoff(memory) / GB:.2f} GB" if gib in FUNCTION_MEMORY_GIB else "–")
        for kind in kinds:
            fits = gib in JOB_MEMORY_GIB
            row.append(_cell(largest(job_cost(measured[kind]), memory)) if fits else "–")
        rows.append(row)
    columns = [
        "Memory",
        *(f"function: largest {k}" for k in kinds),
        "default HANDOFF_BYTES",
        *(f"job task: largest {k}" for k in kinds),
    ]
    sizes = ", ".join(f"{k} at {m['bytes'] / GB:.2f} GB" for k, m in measured.items())
    return {
        "title": "What the function and the job can take (largest upload per memory size)",
        "columns": columns,
        "rows": rows,
        "note": (
            f"From this run's measurements ({sizes}): bench/capacity.py's model, fixed + per GB, "
            "limited by memory, the run's timeout (function 540 s, job task 168 h) and Vertex's "
            "10 GB. The function hands an upload to the job at or above HANDOFF_BYTES, derived "
            "from the instance's memory (handlers/handoff/policy.py); where that default is "
            "above the function's measured largest, an upload between the two would not fit."
        ),
    }


def policy_safe(measured: dict[str, dict[str, Any]], default_handoff: Any) -> dict[str, bool]:
    """Per function memory size: is the default HANDOFF_BYTES at or below what every kind can
    take (so an upload the function keeps always fits)? Above Vertex's 10 GB nothing is kept:
    MAX_ARTIFACT_BYTES refuses it first."""
    return {
        f"{gib}GiB": all(
            min(default_handoff(gib * GIB), VERTEX_MAX_BYTES)
            <= largest(function_cost(m), gib * GIB)[0]
            for m in measured.values()
        )
        for gib in FUNCTION_MEMORY_GIB
    }
