"""Smoke run of the benchmark suite (`python -m bench --quick`) so it cannot rot.

Checks the JSON shape and that every number is present and positive; NOT the targets: a slow
machine must not fail `make test`. The full run is `make bench`.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _clean_env() -> dict[str, str]:
    """The suite starts its own stack: drop the settings other tests exported to this process."""
    from handlers.settings import ENV_VARS, PLATFORM_ENV_VARS

    drop = {*ENV_VARS, *PLATFORM_ENV_VARS}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run_bench(tmp_path: Path, *args: str) -> dict:
    out, md = tmp_path / "results.json", tmp_path / "BENCHMARKS.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            *args,
            "--json",
            str(out),
            "--markdown",
            str(md),
        ],
        cwd=ROOT,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["errors"] == {}
    text = md.read_text()
    assert text.startswith("# Benchmarks") and "| Benchmark | Metric |" in text
    for key in results["benchmarks"]:
        assert f"## {key}:" in text
    return results


def _check_metrics(bench: dict) -> None:
    assert bench["metrics"], "a benchmark without numbers"
    for metric in bench["metrics"]:
        assert metric["name"] and metric["unit"] and metric["n"] >= 1
        for key in ("median", "min", "max", "p25", "p75"):
            value = metric[key]
            assert isinstance(value, float) and math.isfinite(value), (metric["name"], key)
            # Values read from a rounded source (e.g. elapsed_s to 0.1 ms) may round to 0.
            assert value > 0 or ("resolution" in metric and value >= 0), (metric["name"], key)
        assert metric["min"] <= metric["median"] <= metric["max"]
        if "reference" in metric:
            assert metric["reference"]["label"] and metric["reference"]["median"] > 0
            assert metric["ratio"] > 0
        if "target" in metric:
            assert isinstance(metric["target_met"], bool)


def test_quick_run_of_cold_start_and_unrelated_writes_json_and_markdown(tmp_path) -> None:
    results = _run_bench(tmp_path, "--only", "cold_start,unrelated")
    assert list(results["benchmarks"]) == ["cold_start", "unrelated"]
    assert results["meta"]["machine"]["cores"] >= 1 and results["meta"]["date"]
    for bench in results["benchmarks"].values():
        _check_metrics(bench)
    cold = results["benchmarks"]["cold_start"]
    assert cold["facts"]["heavy_modules_after_import_main"] == "[]"
    assert any("reference" in m for m in cold["metrics"])
    statuses = results["benchmarks"]["unrelated"]["facts"]["statuses_ours"]
    assert set(statuses) == {"200"}


@pytest.mark.slow
def test_quick_burst_registers_every_model_exactly_once(tmp_path) -> None:
    """The model path of the suite: build, upload, register, reference worker, exactly-once."""
    results = _run_bench(tmp_path, "--only", "burst")
    burst = results["benchmarks"]["burst"]
    _check_metrics(burst)
    facts = burst["facts"]
    assert facts["models_registered_exactly_once"] == facts["model_uploads"] > 0
    assert facts["versions_in_registry"] == facts["model_uploads"]


def test_unknown_benchmark_or_size_is_refused() -> None:
    for args in (["--only", "nope"], ["--sizes", "3GB"]):
        done = subprocess.run(
            [sys.executable, "-m", "bench", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and "unknown" in done.stderr
