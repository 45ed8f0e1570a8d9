"""`python -m bench [--quick] [--only a,b] [--sizes 100MB,1GB] [--json F] [--markdown F]`

Every option also reads an environment variable (BENCH_QUICK, BENCH_ONLY, BENCH_SIZES,
BENCH_JSON, BENCH_MARKDOWN).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.common import Result, log, machine

BENCHMARKS = ("cold_start", "unrelated", "small_model", "large_model", "burst")
SIZES = {"1MB": 1_000_000, "10MB": 10_000_000, "100MB": 100_000_000, "1GB": 1_000_000_000}


def _runner(name: str) -> Callable[..., Result]:
    from bench import burst, cold_start, large_model, small_model, unrelated

    return {
        "cold_start": lambda opts: cold_start.run(opts.quick),
        "unrelated": lambda opts: unrelated.run(opts.quick),
        "small_model": lambda opts: small_model.run(opts.quick),
        "large_model": lambda opts: large_model.run(opts.quick, opts.size_bytes),
        "burst": lambda opts: burst.run(opts.quick),
    }[name]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=env.get("BENCH_QUICK", "") not in ("", "0"),
        help="few repeats, small counts, 10MB models: a smoke run of every benchmark",
    )
    parser.add_argument(
        "--only",
        default=env.get("BENCH_ONLY", ""),
        help=f"comma-separated subset of {','.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--sizes",
        default=env.get("BENCH_SIZES", ""),
        help=f"large-model sizes, comma-separated from {','.join(SIZES)} "
        "(default 100MB,1GB: the 1 GB run needs ~16 GiB of RAM, use 100MB on a smaller "
        "machine; 10MB with --quick)",
    )
    parser.add_argument("--json", default=env.get("BENCH_JSON", ""), help="write results here")
    parser.add_argument(
        "--markdown", default=env.get("BENCH_MARKDOWN", ""), help="write the table here"
    )
    opts = parser.parse_args(argv)
    only = [s.strip() for s in opts.only.split(",") if s.strip()] or list(BENCHMARKS)
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    opts.only = [b for b in BENCHMARKS if b in only]
    sizes = [s.strip().upper() for s in opts.sizes.split(",") if s.strip()]
    sizes = sizes or (["10MB"] if opts.quick else ["100MB", "1GB"])
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        parser.error(f"unknown size(s) {bad}; choose from {', '.join(SIZES)}")
    opts.sizes = sizes
    opts.size_bytes = {s: SIZES[s] for s in sizes}
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.perf_counter()
    command = "python -m bench " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    results: dict[str, Any] = {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": command.strip(),
            "quick": opts.quick,
            "benchmarks": opts.only,
            "sizes": opts.sizes,
            "machine": machine(),
        },
        "benchmarks": {},
        "errors": {},
    }
    for name in opts.only:
        log(f"--- {name}")
        begun = time.perf_counter()
        try:
            result = _runner(name)(opts)
        except Exception as exc:  # noqa: BLE001 one broken benchmark must not hide the others
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
            continue
        result.seconds = time.perf_counter() - begun
        results["benchmarks"][name] = result.to_json()
        log(f"{name} done in {result.seconds:.1f} s")
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(results, indent=2)
    if opts.json:
        Path(opts.json).write_text(text + "\n")
    else:
        print(text)
    if opts.markdown:
        Path(opts.markdown).write_text(report.markdown(results))
    print(report.console(results), file=sys.stderr)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
