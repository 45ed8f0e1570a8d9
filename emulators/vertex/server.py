"""HTTP routes of the emulator: Vertex AI v1 ModelService over REST, plus `/_emulator/*` admin.

Paths and bindings are the ones the SDK's REST transport uses (`aiplatform_v1 ...
transports/rest_base.py`): `@` arrives percent-encoded as `%40`, query parameters are camelCase,
and the REST operations client polls `/ui/{operation}` (listed first), so both `/ui/` and `/v1/`
serve GetOperation.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from emulators.jsonhttp import BadJson, JsonHandler
from emulators.vertex import rules
from emulators.vertex.artifacts import ArtifactChecker, normalise_storage_url
from emulators.vertex.endpoints import ConcurrentMode, EndpointStore, state_file_for
from emulators.vertex.errors import ApiError, invalid, not_found
from emulators.vertex.faults import Faults
from emulators.vertex.quota import Clock, LroQuota
from emulators.vertex.store import Store

_LOG = logging.getLogger("emulators.vertex")
_LOC = r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_MODEL = _LOC + r"/models/[^/:]+"
_OPERATION = _LOC + r"(?:/models/[^/:]+)?/operations/[^/:]+"
_ENDPOINT = _LOC + r"/endpoints/[^/:]+"
_ENDPOINT_OPERATION = _ENDPOINT + r"/operations/[^/:]+"

Handler = Callable[["EmulatorServer", dict[str, Any]], Any]
# (HTTP method, path regex, RPC name, handler(server, request) -> JSON)
_ROUTES: list[tuple[str, re.Pattern[str], str, Handler]] = [
    (
        "POST",
        re.compile(rf"/v1/{_LOC}/models:upload"),
        "UploadModel",
        lambda s, r: s.store.upload_model(r["project"], r["location"], r["body"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/{_LOC}/models"),
        "ListModels",
        lambda s, r: s.store.list_models(r["project"], r["location"], r["query"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/(?P<name>{_MODEL}):listVersions"),
        "ListModelVersions",
        lambda s, r: s.store.list_versions(r["name"], r["query"]),
    ),
    (
        "POST",
        re.compile(rf"/v1/(?P<name>{_MODEL}):mergeVersionAliases"),
        "MergeVersionAliases",
        lambda s, r: s.store.merge_version_aliases(r["name"], r["body"]),
    ),
    (
        "DELETE",
        re.compile(rf"/v1/(?P<name>{_MODEL}):deleteVersion"),
        "DeleteModelVersion",
        lambda s, r: s.store.delete_model_version(r["name"]),
    ),
    (
        "GET",
        re.compile(rf"/(?:ui|v1)/(?P<name>{_OPERATION})"),
        "GetOperation",
        lambda s, r: s.store.get_operation(r["name"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/(?P<name>{_MODEL})"),
        "GetModel",
        lambda s, r: s.store.get_model(r["name"]),
    ),
    (
        "DELETE",
        re.compile(rf"/v1/(?P<name>{_MODEL})"),
        "DeleteModel",
        lambda s, r: s.store.delete_model(r["name"]),
    ),
    # ---- ModelEvaluations (emulators/vertex/evaluations.py) ----
    (
        "POST",
        re.compile(rf"/v1/(?P<parent>{_MODEL})/evaluations:import"),
        "ImportModelEvaluation",
        lambda s, r: s.store.import_model_evaluation(r["parent"], r["body"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/(?P<parent>{_MODEL})/evaluations"),
        "ListModelEvaluations",
        lambda s, r: s.store.list_model_evaluations(r["parent"], r["query"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/(?P<name>{_MODEL}/evaluations/[^/:]+)"),
        "GetModelEvaluation",
        lambda s, r: s.store.get_model_evaluation(r["name"]),
    ),
    # ---- EndpointService (emulators/vertex/endpoints.py) ----
    (
        "POST",
        re.compile(rf"/v1/{_LOC}/endpoints"),
        "CreateEndpoint",
        lambda s, r: s.endpoints.create_endpoint(
            r["project"], r["location"], r["body"], r["query"]
        ),
    ),
    (
        "GET",
        re.compile(rf"/v1/{_LOC}/endpoints"),
        "ListEndpoints",
        lambda s, r: s.endpoints.list_endpoints(r["project"], r["location"], r["query"]),
    ),
    (
        "POST",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT}):deployModel"),
        "DeployModel",
        lambda s, r: s.endpoints.deploy_model(r["name"], r["body"]),
    ),
    (
        "POST",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT}):undeployModel"),
        "UndeployModel",
        lambda s, r: s.endpoints.undeploy_model(r["name"], r["body"]),
    ),
    (
        "POST",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT}):mutateDeployedModel"),
        "MutateDeployedModel",
        lambda s, r: s.endpoints.mutate_deployed_model(r["name"], r["body"]),
    ),
    (
        "POST",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT}):(?:predict|rawPredict)"),
        "Predict",
        lambda s, r: s.endpoints.predict(r["name"]),
    ),
    (
        "GET",
        re.compile(rf"/(?:ui|v1)/(?P<name>{_ENDPOINT_OPERATION})"),
        "GetOperation",
        lambda s, r: s.endpoints.get_operation(r["name"]),
    ),
    (
        "GET",
        re.compile(rf"/(?:ui|v1)/(?P<name>{_ENDPOINT})/operations"),
        "ListOperations",
        lambda s, r: s.endpoints.list_operations(r["name"], r["query"]),
    ),
    (
        "GET",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT})"),
        "GetEndpoint",
        lambda s, r: s.endpoints.get_endpoint(r["name"]),
    ),
    (
        "PATCH",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT})"),
        "UpdateEndpoint",
        lambda s, r: s.endpoints.update_endpoint(r["name"], r["body"], r["query"]),
    ),
    (
        "DELETE",
        re.compile(rf"/v1/(?P<name>{_ENDPOINT})"),
        "DeleteEndpoint",
        lambda s, r: s.endpoints.delete_endpoint(r["name"]),
    ),
]


class EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        *,
        endpoint_state_file: str | None = None,
        quota_per_minute: int | None = None,
        quota_clock: Clock | None = None,
        deploy_seconds: float = 0.0,
        concurrent_mutations: ConcurrentMode = "reject",
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.store = store
        self.endpoints = EndpointStore(  # registers its lookup
            store,
            endpoint_state_file,
            deploy_seconds=deploy_seconds,
            concurrent_mutations=concurrent_mutations,
        )
        self._startup_endpoints = {
            "deploy_seconds": deploy_seconds,
            "concurrent_mutations": concurrent_mutations,
        }
        self.faults = Faults()
        # LRO submissions per minute per project+region (quota.py); None: not enforced
        self.quota = LroQuota(quota_per_minute, quota_clock)
        self._startup_quota = self.quota.per_minute
        self._startup_today = store.today_override
        self.calls: Counter[str] = Counter()
        self._calls_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, rpc: str) -> None:
        with self._calls_lock:
            self.calls[rpc] += 1

    def admin(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if (method, path) == ("POST", "/_emulator/faults"):
            self.faults.add(body)
            return self.faults.snapshot()
        if (method, path) == ("DELETE", "/_emulator/faults"):
            self.faults.clear()
            return {}
        if (method, path) == ("POST", "/_emulator/config"):
            if "operation_polls" in body:
                self.store.operation_polls = int(body["operation_polls"])
            if "quota_per_minute" in body:
                self.quota.set_rate(body["quota_per_minute"])
            if "today" in body:  # the date serving-image end-of-availability is judged on
                self.store.today_override = _parse_day(body["today"])
            endpoints = self.endpoints.configure(
                deploy_seconds=body.get("deploy_seconds"),
                concurrent_mutations=body.get("concurrent_mutations"),
            )
            return {
                "operation_polls": self.store.operation_polls,
                "quota_per_minute": self.quota.per_minute,
                "today": self.store.today().isoformat(),
                **endpoints,
            }
        if (method, path) == ("POST", "/_emulator/reset"):
            self.store.reset()
            self.endpoints.reset()
            self.endpoints.configure(**self._startup_endpoints)
            self.faults.clear()
            self.quota.reset()  # usage forgotten; the rate goes back to the startup value
            self.quota.set_rate(self._startup_quota)
            self.store.today_override = self._startup_today
            with self._calls_lock:
                self.calls.clear()
            return {}
        if (method, path) == ("GET", "/_emulator/quota"):
            return self.quota.usage()
        if (method, path) == ("GET", "/_emulator/state"):
            with self._calls_lock:
                calls = dict(self.calls)
            return {
                **self.store.snapshot(),
                **self.endpoints.snapshot(),
                **self.faults.snapshot(),
                **self.quota.snapshot(),
                "calls": calls,
            }
        raise not_found(f"No admin endpoint {method} {path}.")


class _RequestHandler(JsonHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out separately; avoid 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.debug("%s " + format, self.address_string(), *args)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._body()
            if path.startswith("/_emulator/"):
                self._reply(200, self.server.admin(method, path, body))
                return
            self._reply(200, self._call(method, path, body, query))
        except ApiError as exc:
            self._reply(exc.code, exc.to_json())
        except BadJson as exc:
            self._reply(400, invalid(str(exc)).to_json())
        except Exception as exc:  # noqa: BLE001 (an emulator bug must answer 500, not hang)
            _LOG.exception("emulator error on %s %s", method, path)
            self._reply(500, ApiError(500, f"Emulator error: {exc!r}").to_json())

    def _call(self, method: str, path: str, body: dict[str, Any], query: dict[str, str]) -> Any:
        for verb, pattern, rpc, handler in _ROUTES:
            match = pattern.fullmatch(path)
            if verb != method or not match:
                continue
            self.server.count(rpc)
            fault = self.server.faults.take(rpc, "before")
            if fault:
                raise fault
            groups = match.groupdict()
            rules.check_parent(groups["project"], groups["location"])
            self.server.quota.admit(rpc, groups["project"], groups["location"])
            request = {**groups, "body": body, "query": query}
            result = handler(self.server, request)
            fault = self.server.faults.take(rpc, "after")
            if fault:
                raise fault
            return result
        raise not_found(f"The requested URL {method} {path} was not found on this server.")


def start_in_thread(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    state_file: str | None = None,
    operation_polls: int = 0,
    storage_url: str | None = None,
    quota_per_minute: int | None = None,
    quota_clock: Clock | None = None,
    deploy_seconds: float = 0.0,
    concurrent_mutations: ConcurrentMode = "reject",
    today: date | None = None,
) -> tuple[EmulatorServer, str]:
    """Serve in a daemon thread; returns the server (call `.shutdown()`) and its base URL.

    With `storage_url` (a GCS JSON API such as fake-gcs-server) UploadModel checks the artifact
    directory like Vertex does. The environment is not read here: in-process tests must not
    start checking because another fixture exported `STORAGE_EMULATOR_HOST`.
    `quota_per_minute` enforces Vertex's LRO submission quota (60 on Vertex; None: off), counted
    on `quota_clock` (default `time.monotonic`; tests pass a fake one). `today`: the date
    serving images' end of availability is judged on (default: the real UTC date).
    """
    store = make_store(state_file, operation_polls, storage_url)
    store.today_override = today
    server = EmulatorServer(
        (host, port),
        store,
        endpoint_state_file=state_file_for(state_file),
        quota_per_minute=quota_per_minute,
        quota_clock=quota_clock,
        deploy_seconds=deploy_seconds,
        concurrent_mutations=concurrent_mutations,
    )
    thread = threading.Thread(target=server.serve_forever, name="vertex-emulator", daemon=True)
    thread.start()
    return server, server.base_url


def _parse_day(value: Any) -> date | None:
    """`YYYY-MM-DD`, or null/"" for the real date."""
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise invalid(f"today {value!r}: expected YYYY-MM-DD or null.") from None


def make_store(
    state_file: str | None = None, operation_polls: int = 0, storage_url: str | None = None
) -> Store:
    url = normalise_storage_url(storage_url)
    return Store(state_file, operation_polls, ArtifactChecker(url) if url else None)
