"""The capacity model `make bench` reports (bench/capacity.py): largest upload per memory size
for the function and the job, and what limits it."""

from __future__ import annotations

import pytest

from bench import capacity
from bench.capacity import GB, GIB
from handlers.handoff import policy

# One 1 GB measurement: idle instance 0.75 GiB, peak 2 GB above it (the policy's 2.0x), 20 s;
# the job took 30 s and peaked 0.5 GiB more above its idle emulator (a task's start).
MEASURED = {
    "bytes": GB,
    "seconds": 20.0,
    "peak": 0.75 * GIB + 2 * GB,
    "idle": 0.75 * GIB,
    "job_seconds": 30.0,
    "job_above_idle": 2 * GB + 0.5 * GIB,
}


def test_the_function_is_limited_by_memory_then_by_vertex() -> None:
    cost = capacity.function_cost(MEASURED)
    assert cost.bytes_per_gb == pytest.approx(2 * GB)
    size, limit = capacity.largest(cost, 4 * GIB)
    assert limit == "memory" and size == pytest.approx((4 - 0.75) * GIB / 2)
    assert capacity.largest(cost, 32 * GIB) == (10 * GB, "Vertex's 10 GB")


def test_a_slow_path_is_limited_by_the_timeout() -> None:
    slow = {**MEASURED, "seconds": 200.0}  # 200 s per GB: 540 s take 2.7 GB
    size, limit = capacity.largest(capacity.function_cost(slow), 32 * GIB)
    assert limit == "timeout" and size == pytest.approx(2.7 * GB)


def test_the_job_adds_a_tasks_start_to_the_functions_per_gb_cost() -> None:
    job = capacity.job_cost(MEASURED)
    assert job.fixed_bytes == pytest.approx(0.5 * GIB)
    assert job.fixed_seconds == pytest.approx(10.0)
    assert job.bytes_per_gb == capacity.function_cost(MEASURED).bytes_per_gb
    size, limit = capacity.largest(job, 8 * GIB)
    assert limit == "memory" and size == pytest.approx((8 - 0.5) * GIB / 2)


def test_the_table_covers_every_memory_size_and_flags_an_unsafe_default() -> None:
    table = capacity.table({".keras": MEASURED}, policy.default_handoff_bytes)
    memories = [row[0] for row in table["rows"]]
    assert memories == [f"{g} GiB" for g in (1, 2, 4, 8, 16, 32)]
    assert len(table["columns"]) == len(table["rows"][0]) == 4
    safe = capacity.policy_safe({".keras": MEASURED}, policy.default_handoff_bytes)
    assert all(safe.values())  # 32 GiB: the default is above Vertex's 10 GB, which limits first
    hungry = {**MEASURED, "peak": 0.75 * GIB + 2.2 * GB}  # 2.2x: the default's 2.1x is too high
    assert not capacity.policy_safe({"x": hungry}, policy.default_handoff_bytes)["4GiB"]


def test_the_markdown_report_renders_the_capacity_table() -> None:
    from bench import report

    table = capacity.table({".keras": MEASURED}, policy.default_handoff_bytes)
    machine = {"cpu": "x", "cores": 2, "memory_gib": 1, "os": "linux", "python": "3.11"}
    results = {
        "meta": {
            "command": "python -m bench",
            "date": "today",
            "machine": {**machine, "packages": {}},
        },
        "benchmarks": {
            "large_model": {"title": "Large", "seconds": 1, "metrics": [], "tables": [table]}
        },
    }
    text = report.markdown(results)
    assert f"**{table['title']}**" in text
    assert "| Memory | function: largest .keras | default HANDOFF_BYTES |" in text
    assert "| 4 GiB | 1.74 GB (memory) | 1.66 GB | 1.88 GB (memory) |" in text
