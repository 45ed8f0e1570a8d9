"""When an upload does not fit the function, and what the function then says.

Measured (issue 22; `make bench`, 1 GB): a `.keras` or SavedModel peaks at 2.0x its size above an
idle instance of at most 0.75 GiB, and takes 7-27 s per GB from event to registered version (the
store's upload speed decides). The default of HANDOFF_BYTES keeps 5% of margin over that peak:
(M - 0.75 GiB) / 2.1 for an instance of M bytes (4 GiB: 1.66 GB; 8 GiB: 3.71 GB; 16 GiB: 7.80 GB;
32 GiB: all of Vertex's 10 GB). `make bench` checks the default against what it measures.
An upload smaller than that is still handed off when, at SECONDS_PER_GB, it cannot finish before
the run's deadline (`pipeline.run_deadline`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ..settings import GB, Settings

GIB = 1 << 30
IDLE_BYTES = int(0.75 * GIB)  # an idle instance: Python, the framework, the clients
PEAK_PER_BYTE = 2.1  # measured peak above idle per byte of upload (2.0), plus 5% of margin
SECONDS_PER_GB = 30.0  # measured 7-27 s/GB event -> registered, with room for a slower store
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")


@dataclass(frozen=True)
class Why:
    code: str  # too_large_for_function | too_slow_for_function
    message: str


@functools.cache  # an instance's memory does not change: read cgroup/proc once
def instance_memory_bytes() -> int | None:
    """The instance's memory: its cgroup limit (Cloud Run / Functions set one), else the host's."""
    for path in _CGROUP_LIMITS:
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 1 << 50:  # "max" or a huge number: no limit
            return int(raw)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_handoff_bytes(memory_bytes: int | None) -> int:
    """(memory - idle) / peak per byte; with the memory unknown, 1 GB (fits a 4 GiB instance)."""
    if memory_bytes is None:
        return GB
    return max(1, int((memory_bytes - IDLE_BYTES) / PEAK_PER_BYTE))


def handoff_bytes(settings: Settings) -> int:
    if settings.handoff_bytes is not None:
        return settings.handoff_bytes
    return default_handoff_bytes(instance_memory_bytes())


def needs_job(size: int, settings: Settings, seconds_left: float) -> Why | None:
    """Why an upload of `size` bytes should go to the job (None: the function takes it)."""
    limit = handoff_bytes(settings)
    if size >= limit:
        return Why(
            "too_large_for_function",
            f"{size:,} bytes is at or above HANDOFF_BYTES={limit:,} (what this instance's memory "
            f"holds at the measured peak of {PEAK_PER_BYTE}x the upload above an idle 0.75 GiB)",
        )
    needed = size / GB * SECONDS_PER_GB
    if needed > seconds_left:
        return Why(
            "too_slow_for_function",
            f"{size:,} bytes needs about {needed:.0f} s at {SECONDS_PER_GB:.0f} s/GB, more than "
            f"the {max(seconds_left, 0):.0f} s left before the run's deadline "
            "(FUNCTION_TIMEOUT_SECONDS)",
        )
    return None


def no_job(uri: str, why: Why) -> str:
    """The rejection when no job is configured: what to turn on."""
    return (
        f"{uri} does not fit the function: {why.message}. Set JOB_NAME to a Cloud Run job "
        "(Terraform: job.enabled = true) so such uploads are handed off to it, or give the "
        "function more memory (Terraform: available_memory) / raise HANDOFF_BYTES."
    )
