"""The stack the benchmarks drive: the same fake-gcs-server, Vertex emulator and functions-framework
processes as `make demo` and the integration tests (dev/stack.py), plus helpers to upload objects
over the JSON API, deliver binary-mode CloudEvents and read the function's JSON log lines."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from dev import stack
from dev.bridge import binary_event

PROJECT = "bench-project"
LOCATION = "us-central1"


@dataclass
class Function:
    service: stack.Service
    log_dir: Path
    started_s: float  # spawn -> answering HTTP

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def pid(self) -> int:
        return self.service.proc.pid

    def log_entries(self) -> list[dict[str, Any]]:
        path = self.log_dir / "function.log"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
        return entries

    def by_event(self) -> dict[str, dict[str, Any]]:
        """The last log line carrying each event id (the outcome line)."""
        return {e["event_id"]: e for e in self.log_entries() if e.get("event_id")}

    def stop(self) -> None:
        self.service.stop()


@dataclass
class BenchStack:
    root: Path
    storage: stack.Service
    vertex: stack.Service
    bucket: str = "bench-models"
    functions: list[Function] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def start(cls, root: Path | None = None) -> BenchStack:
        root = Path(root or tempfile.mkdtemp(prefix="registrar-bench-"))
        # A 1 GB run puts ~12 GB through the store (sources, copies, exports, each measured
        # twice): without a limit, what was deleted stays resident and the OOM killer ends it.
        # Not much lower: at 8 GiB its collector ran all the time and doubled upload times.
        storage = stack.start_fake_gcs(log_dir=root / "logs", go_memory_limit="12GiB")
        try:
            vertex = stack.start_vertex_emulator(log_dir=root / "logs")
        except Exception:
            storage.stop()
            raise
        bench = cls(root, storage, vertex)
        stack.create_bucket(storage.url, bench.bucket)
        return bench

    def function_env(self, **overrides: str) -> dict[str, str]:
        env = stack.function_env(
            self.storage.url,
            self.vertex.url,
            GOOGLE_CLOUD_PROJECT=PROJECT,
            LOG_LEVEL="DEBUG",  # ignored objects log at DEBUG: their line carries elapsed_s
        )
        env.update(overrides)
        return env

    def start_function(self, name: str, source: Path | None = None, **env: str) -> Function:
        """A functions-framework server for main.py (`dev.stack.start_function`) or, with
        `source`, for another module exposing `register_model` (the references)."""
        log_dir = self.root / name
        if log_dir.exists():
            shutil.rmtree(log_dir)
        log_dir.mkdir(parents=True)
        started = time.perf_counter()
        if source is None:
            service = stack.start_function(self.function_env(**env), log_dir=log_dir)
        else:
            service = stack.start_function(
                self.function_env(**env), log_dir=log_dir, source=source, ready_timeout=120
            )
        function = Function(service, log_dir, time.perf_counter() - started)
        self.functions.append(function)
        return function

    def stop(self) -> None:
        for function in self.functions:
            function.stop()
        self.vertex.stop()
        self.storage.stop()
        self.session.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- objects -------------------------------------------------------------------------------
    def upload_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        return self._upload(name, data)

    def upload_file(self, name: str, path: Path) -> dict[str, Any]:
        with path.open("rb") as f:
            return self._upload(name, f)

    def upload_dir(self, prefix: str, directory: Path) -> list[dict[str, Any]]:
        files = sorted(p for p in directory.rglob("*") if p.is_file())
        return [self.upload_file(prefix + p.relative_to(directory).as_posix(), p) for p in files]

    def forget_all(self) -> None:
        """Delete every object generation in the bucket: fake-gcs-server keeps them all in
        memory, and a 1 GB run leaves several GB (sources, copies, exports) behind."""
        base = f"{self.storage.url}/storage/v1/b/{self.bucket}/o"
        token = None
        while True:
            params = {"versions": "true", **({"pageToken": token} if token else {})}
            # fresh connections: a kept-alive one may have been closed while a model loaded
            listing = requests.get(base, params=params, timeout=60).json()
            for item in listing.get("items", []):
                requests.delete(
                    f"{base}/{quote(item['name'], safe='')}",
                    params={"generation": item["generation"]},
                    timeout=60,
                )
            token = listing.get("nextPageToken")
            if not token:
                return

    def _upload(self, name: str, body: Any) -> dict[str, Any]:
        reply = self.session.post(
            f"{self.storage.url}/upload/storage/v1/b/{self.bucket}/o",
            params={"uploadType": "media", "name": name},
            data=body,
            headers={"Content-Type": "application/octet-stream"},
            timeout=600,
        )
        reply.raise_for_status()
        return reply.json()

    def resource(self, name: str) -> dict[str, Any]:
        reply = self.session.get(
            f"{self.storage.url}/storage/v1/b/{self.bucket}/o/{quote(name, safe='')}", timeout=10
        )
        reply.raise_for_status()
        return reply.json()

    # -- vertex --------------------------------------------------------------------------------
    def reset_vertex(self) -> None:
        self.session.post(f"{self.vertex.url}/_emulator/reset", timeout=10).raise_for_status()

    def vertex_versions(self) -> list[dict[str, Any]]:
        parent = f"projects/{PROJECT}/locations/{LOCATION}"
        models = self._pages(f"{self.vertex.url}/v1/{parent}/models", "models")
        versions = []
        for model in models:
            versions += self._pages(f"{self.vertex.url}/v1/{model['name']}:listVersions", "models")
        return versions

    def _pages(self, url: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            params = {"pageSize": 100, **({"pageToken": token} if token else {})}
            reply = self.session.get(url, params=params, timeout=30)
            reply.raise_for_status()
            body = reply.json()
            items += body.get(key, [])
            token = body.get("nextPageToken", "")
            if not token:
                return items


def deliver(
    session: requests.Session, url: str, resource: dict[str, Any], event_id: str | None = None
) -> tuple[int, float, str]:
    """POST the binary-mode CloudEvent Eventarc sends; returns (status, round trip s, event id)."""
    headers, body = binary_event(resource, event_id)
    started = time.perf_counter()
    status = session.post(url, data=body, headers=headers, timeout=900).status_code
    return status, time.perf_counter() - started, headers["ce-id"]


class LightClient:
    """One keep-alive connection with `http.client`: a fraction of `requests`' client CPU, which
    matters when the load generator shares two cores with the server it measures."""

    def __init__(self, url: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=900)

    def deliver(
        self, resource: dict[str, Any], event_id: str | None = None
    ) -> tuple[int, float, str]:
        headers, body = binary_event(resource, event_id)
        import http.client

        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                self._conn.request("POST", "/", body=body, headers=headers)
                reply = self._conn.getresponse()
                reply.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # gunicorn closes keep-alive connections idle for 2 s: reconnect once.
                self._conn.close()
                if attempt == 2:
                    raise
        return reply.status, time.perf_counter() - started, headers["ce-id"]

    def close(self) -> None:
        self._conn.close()
