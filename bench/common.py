"""Shared measuring tools: statistics, results, fresh-process timers and a process-tree memory
sampler that also counts the bytes written to temp directories (RAM on Cloud Functions)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MIB = 1024**2


# ---- statistics ---------------------------------------------------------------------------------
def summary(samples: Iterable[float]) -> dict[str, Any]:
    """Median with the spread: min, max, quartiles (inclusive method) and the sample count."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("no samples")
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {
        "median": statistics.median(values),
        "min": values[0],
        "max": values[-1],
        "p25": q1,
        "p75": q3,
        "n": len(values),
    }


@dataclass
class Metric:
    """One measured quantity, optionally next to a reference measured in the same run.

    `ratio` is always ours / reference; `better` says which direction is good ("lower" for times
    and memory, "higher" for throughput), and `target` is checked against `check` (if given).
    """

    name: str
    unit: str
    samples: list[float]
    reference: list[float] | None = None
    reference_label: str = ""
    better: str = "lower"
    target: str = ""
    check: Callable[[dict[str, Any]], bool] | None = None
    note: str = ""
    resolution: float | None = None  # the source's rounding step: a median of 0 means "below"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "unit": self.unit, "better": self.better}
        out.update(summary(self.samples))
        if self.reference:
            ref = summary(self.reference)
            out["reference"] = {"label": self.reference_label, **ref}
            out["ratio"] = out["median"] / ref["median"] if ref["median"] else None
        if self.target:
            out["target"] = self.target
            out["target_met"] = bool(self.check(out)) if self.check else None
        if self.note:
            out["note"] = self.note
        if self.resolution is not None:
            out["resolution"] = self.resolution
        return out


@dataclass
class Result:
    key: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)  # exact counts, assertions, settings
    # derived tables: {"title": ..., "columns": [...], "rows": [[...], ...], "note": ...}
    tables: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, metric: Metric) -> Metric:
        self.metrics.append(metric)
        return metric

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 2),
            "metrics": [m.to_json() for m in self.metrics],
            "facts": self.facts,
            "tables": self.tables,
            "notes": self.notes,
        }


# ---- fresh processes ----------------------------------------------------------------------------
def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no credentials, no emulator hosts unless given, quiet TF."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


@dataclass
class Spawned:
    ready_s: float  # spawn -> the child's "ready" line
    peak_rss_mib: float  # the child's own peak RSS (getrusage), not its children's
    lines: list[str]


def time_to_ready(code: str, env: dict[str, str], timeout: float = 120.0) -> Spawned:
    """Run `python -c code` and time spawn -> its first stdout line; the process exit (TF takes
    ~0.6 s to tear down) is not part of the time. The child must print one line when ready."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    ready = time.perf_counter() - started
    rest = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}): {err[-2000:]}")
    return Spawned(ready, usage.ru_maxrss / 1024, [first.strip(), *rest.splitlines()])


# ---- memory of a process tree plus temp bytes ---------------------------------------------------
def tree_memory(root_pid: int) -> tuple[int, int]:
    """(PSS, RSS) summed over a process and its descendants. PSS counts pages shared between the
    gunicorn master and its forked worker once; RSS would count them twice."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    pss = rss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
    return pss, rss


def dir_bytes(path: Path) -> int:
    """Allocated bytes of every file under `path` (what a tmpfs would hold in RAM): a file
    hard-linked twice (the sandbox's inbox links the upload) holds its blocks once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total


class MemorySampler:
    """Samples PSS of a process tree + bytes under temp dirs every `interval` seconds."""

    def __init__(self, root_pid: int, dirs: list[Path], interval: float = 0.02) -> None:
        self.root_pid = root_pid
        self.dirs = dirs
        self.interval = interval
        self.peak_total = self.peak_pss = self.peak_temp = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> tuple[int, int]:
        pss, _ = tree_memory(self.root_pid)
        temp = sum(dir_bytes(d) for d in self.dirs)
        self.peak_pss = max(self.peak_pss, pss)
        self.peak_temp = max(self.peak_temp, temp)
        self.peak_total = max(self.peak_total, pss + temp)
        self.samples += 1
        return pss, temp

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mem-sampler")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


def machine() -> dict[str, Any]:
    import platform

    import psutil

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": _versions(
            ["tensorflow-cpu", "keras", "functions-framework", "google-cloud-aiplatform"]
        ),
    }


def _versions(names: list[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
