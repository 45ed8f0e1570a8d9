"""HTTP routes: Cloud Run Admin API v2 jobs/executions/operations over REST, plus `/_emulator/*`.

Paths are the REST bindings of `google-cloud-run` (run_v2 `services/jobs/transports/
rest_base.py`, `services/executions/...`): `POST /v2/{parent}/jobs?jobId=`, `GET /v2/{job}`,
`POST /v2/{job}:run`, `GET /v2/{job}/executions`, `GET /v2/{execution}`, `GET /v2/{operation}`.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulators.cloudrun.errors import ApiError, invalid, not_found
from emulators.cloudrun.runner import Runner
from emulators.cloudrun.store import Store
from emulators.jsonhttp import JsonHandler

_LOG = logging.getLogger("emulators.cloudrun")
_LOC = r"projects/[^/]+/locations/[^/]+"
_JOB = _LOC + r"/jobs/[^/:]+"

Handler = Callable[[Store, dict[str, Any]], Any]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    (
        "POST",
        re.compile(rf"/v2/(?P<parent>{_LOC})/jobs"),
        lambda s, r: s.create_job(r["parent"], r["query"].get("jobId"), r["body"]),
    ),
    ("GET", re.compile(rf"/v2/(?P<parent>{_LOC})/jobs"), lambda s, r: s.list_jobs(r["parent"])),
    (
        "POST",
        re.compile(rf"/v2/(?P<name>{_JOB}):run"),
        lambda s, r: s.run_job(r["name"], r["body"]),
    ),
    (
        "GET",
        re.compile(rf"/v2/(?P<parent>{_JOB})/executions"),
        lambda s, r: s.list_executions(r["parent"]),
    ),
    (
        "GET",
        re.compile(rf"/v2/(?P<name>{_JOB}/executions/[^/:]+)"),
        lambda s, r: s.get_execution(r["name"]),
    ),
    ("GET", re.compile(rf"/v2/(?P<name>{_JOB})"), lambda s, r: s.get_job(r["name"])),
    ("DELETE", re.compile(rf"/v2/(?P<name>{_JOB})"), lambda s, r: s.delete_job(r["name"])),
    (
        "GET",
        re.compile(rf"/v2/(?P<name>{_LOC}/operations/[^/:]+)"),
        lambda s, r: s.get_operation(r["name"]),
    ),
    (
        "POST",
        re.compile(rf"/v2/(?P<name>{_LOC}/operations/[^/:]+):wait"),
        lambda s, r: s.get_operation(r["name"]),
    ),
]


class JobsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], runner: Runner) -> None:
        super().__init__(address, _Handler)
        self.runner = runner
        self.store = Store(runner)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def shutdown(self) -> None:
        self.runner.stop()
        super().shutdown()
        self.server_close()

    def admin(self, method: str, path: str, body: dict[str, Any]) -> Any:
        """`/_emulator/faults` (POST {"kill_on_output": TEXT, "count": N}; DELETE clears),
        `/_emulator/tasks` (GET: every task attempt with its exit code and output tail)."""
        if path == "/_emulator/faults" and method == "POST":
            text = body.get("kill_on_output")
            if not isinstance(text, str) or not text:
                raise invalid("kill_on_output: a non-empty string is required")
            self.runner.faults.add(text, int(body.get("count", 1)))
            return {}
        if path == "/_emulator/faults" and method == "DELETE":
            self.runner.faults.clear()
            return {}
        if path == "/_emulator/tasks" and method == "GET":
            return {"attempts": [a.view() for a in list(self.runner.attempts)]}
        raise not_found(f"no admin route {method} {path}")


class _Handler(JsonHandler):
    server: JobsServer
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        _LOG.debug(fmt, *args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body()
            if path.startswith("/_emulator/"):
                result = self.server.admin(method, path, body)
            else:
                result = self._call(method, path, body, query)
        except ApiError as exc:
            self._reply(exc.http, exc.body())
            return
        except ValueError as exc:
            self._reply(400, invalid(str(exc)).body())
            return
        self._reply(200, result)

    def _call(self, method: str, path: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        for verb, pattern, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if verb == method and match:
                return handler(
                    self.server.store, {**match.groupdict(), "body": body, "query": query}
                )
        raise not_found(f"The requested URL {method} {path} was not found on this server.")


def start_in_thread(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    workdir: str | Path = ".",
    env: dict[str, str] | None = None,
    max_parallel: int = 4,
) -> tuple[JobsServer, str]:
    """Serve in a daemon thread; returns the server (`.shutdown()` also kills running tasks)
    and its base URL. Tasks run in `workdir` with `env` (default: this process's environment)."""
    server = JobsServer((host, port), Runner(workdir, env, max_parallel))
    threading.Thread(target=server.serve_forever, name="cloudrun-emulator", daemon=True).start()
    return server, server.base_url
