"""The Vertex AI v1 EndpointService: endpoints, deployed models and traffic splits.

State lives here, next to the model `Store` it asks about models (public calls only). The model
store in turn asks `deployments()` whether a version is deployed (`Store.set_deployment_lookup`),
so DeleteModelVersion / DeleteModel refuse deployed versions as Vertex does.

Locking: one lock guards this state. It is never held while calling into the model store, and
the model store calls `deployments()` while holding its own lock, so the two locks never wait on
each other. DeployModel records the deployment first and then re-reads the model version; if a
concurrent DeleteModelVersion removed it in between, the deployment is rolled back (404), so a
deployed version can never be one that was deleted.

Deployments take time (`deploy_seconds`, 0 = at once as before): DeployModel and UndeployModel
answer a running operation (`done: false`) and change the endpoint - its deployed models and its
traffic split - only when the operation lands, as Vertex does (an endpoint's split is the one the
last finished operation left). What Vertex does with a second mutation of an endpoint while one
is running is not documented, so both plausible behaviours are selectable
(`concurrent_mutations`): `reject` (FAILED_PRECONDITION until the running one lands; the default)
and `last_writer_wins` (both run; each one's split applies when it lands, the later overwriting
the earlier). A version being deployed counts as deployed (DeleteModelVersion refuses it).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from emulators.vertex import endpoint_rules as er
from emulators.vertex import filters, rules
from emulators.vertex.errors import (
    ApiError,
    already_exists,
    failed_precondition,
    invalid,
    not_found,
)
from emulators.vertex.paging import page
from emulators.vertex.persist import (
    Operation,
    load_operations,
    poll_operation,
    start_operation,
    with_etag,
    write_state,
)
from emulators.vertex.resources import camel, camel_keys, now, parse_model_name
from emulators.vertex.store import Store

_T = "type.googleapis.com/google.cloud.aiplatform.v1."
CREATE_METADATA = _T + "CreateEndpointOperationMetadata"
DELETE_METADATA = _T + "DeleteOperationMetadata"
DEPLOY_METADATA = _T + "DeployModelOperationMetadata"
UNDEPLOY_METADATA = _T + "UndeployModelOperationMetadata"
MUTATE_METADATA = _T + "MutateDeployedModelOperationMetadata"
ENDPOINT_TYPE = _T + "Endpoint"
DEPLOY_RESPONSE = _T + "DeployModelResponse"
UNDEPLOY_RESPONSE = _T + "UndeployModelResponse"
MUTATE_RESPONSE = _T + "MutateDeployedModelResponse"
EMPTY = "type.googleapis.com/google.protobuf.Empty"
ENDPOINT_NAME = re.compile(
    r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/endpoints/(?P<endpoint>[^/:@]+)"
)
_FILTER_ENDPOINT = re.compile(r"(^|\sAND\s)(\s*)endpoint(?=\s*!?=)")
_FILTER_MODEL = re.compile(r"(^|\sAND\s)\s*model\s*(!=|=|:)")
CONCURRENT_MODES = ("reject", "last_writer_wins")
ConcurrentMode = Literal["reject", "last_writer_wins"]
_DONE_FILTER = re.compile(r"\s*done\s*=\s*(true|false)\s*")
_MESSAGE_MODEL = re.compile(r"(?<=['\s])model(?=\s*!?=| and display_name)")


@dataclass
class Endpoint:
    name: str
    fields: dict[str, Any]  # displayName, description, labels and the other stored fields
    create_time: str
    update_time: str
    deployed: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> DeployedModel
    traffic: dict[str, int] = field(default_factory=dict)


class EndpointStore:
    def __init__(
        self,
        models: Store,
        state_file: str | None = None,
        *,
        deploy_seconds: float = 0.0,
        concurrent_mutations: ConcurrentMode = "reject",
        clock: Any = time.time,
    ) -> None:
        self._models = models
        self._lock = threading.RLock()
        self._state_file = state_file
        self._endpoints: dict[str, Endpoint] = {}
        self._operations: dict[str, Operation] = {}
        # operation name -> a DeployModel/UndeployModel that has not landed yet (JSON-able)
        self._running: dict[str, dict[str, Any]] = {}
        self._counter = 0
        self._clock = clock
        self.deploy_seconds = deploy_seconds
        self.concurrent_mutations: ConcurrentMode = concurrent_mutations
        if state_file and os.path.exists(state_file):
            self._load(state_file)
        models.set_deployment_lookup(self.is_deployed)

    # ---- admin and the model store's hook -----------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._endpoints.clear()
            self._operations.clear()
            self._running.clear()
            self._counter = 0
            self._save()

    def configure(
        self, *, deploy_seconds: float | None = None, concurrent_mutations: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            if deploy_seconds is not None:
                if deploy_seconds < 0:
                    raise invalid("deploy_seconds cannot be negative.")
                self.deploy_seconds = float(deploy_seconds)
            if concurrent_mutations is not None:
                if concurrent_mutations not in CONCURRENT_MODES:
                    raise invalid(f"concurrent_mutations must be one of {CONCURRENT_MODES}.")
                self.concurrent_mutations = concurrent_mutations  # type: ignore[assignment]
            return {
                "deploy_seconds": self.deploy_seconds,
                "concurrent_mutations": self.concurrent_mutations,
            }

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._settle()
            return {
                "endpoints": {n: self._render(e) for n, e in self._endpoints.items()},
                "endpoint_operations": len(self._operations) + len(self._running),
                "endpoint_operations_running": sorted(self._running),
            }

    def deployments(self, model_name: str, version_id: str | None = None) -> list[dict[str, str]]:
        """DeployedModelRefs of `model_name` (a `@selector` is ignored) at `version_id` (None: any).

        The model store calls this (with its own lock held) before deleting a version or a model.
        """
        base = model_name.split("@", 1)[0]
        with self._lock:
            self._settle()
            landed = [
                {"endpoint": e.name, "deployedModelId": d["id"]}
                for e in self._endpoints.values()
                for d in e.deployed.values()
                if d["model"] == base and version_id in (None, d["modelVersionId"])
            ]
            being_deployed = [  # a version on its way to an endpoint is in use already
                {"endpoint": r["endpoint"], "deployedModelId": r["deployedModel"]["id"]}
                for r in self._running.values()
                if r["kind"] == "deploy"
                and r["deployedModel"]["model"] == base
                and version_id in (None, r["deployedModel"]["modelVersionId"])
            ]
            return landed + being_deployed

    def is_deployed(self, model_name: str, version_id: str) -> bool:
        """The model store's hook (`Store.set_deployment_lookup`)."""
        return bool(self.deployments(model_name, version_id))

    # ---- EndpointService ----------------------------------------------------------------
    def create_endpoint(
        self, project: str, location: str, body: dict[str, Any], query: Mapping[str, str]
    ) -> dict[str, Any]:
        parent = f"projects/{project}/locations/{location}"
        spec = camel_keys(body)
        rules.no_unknown(spec, er.ENDPOINT_FIELDS, "endpoint")
        rules.check_display_name(spec.get("displayName"), "Endpoint.display_name")
        labels = rules.check_labels(spec.get("labels"), "Endpoint.labels")
        er.check_private_networking(spec)
        split = er.traffic_split(spec.get("trafficSplit"), "Endpoint.traffic_split")
        er.check_split_keys(split, set())
        endpoint_id = query.get("endpointId") or query.get("endpoint_id") or ""
        if endpoint_id:
            er.check_endpoint_id(endpoint_id)
        stored = {k: v for k, v in spec.items() if k not in er.ENDPOINT_OUTPUT_ONLY}
        stored.pop("trafficSplit", None)
        stored.pop("labels", None)
        if labels:
            stored["labels"] = labels
        with self._lock:
            if not endpoint_id:
                self._counter += 1
                endpoint_id = str(2_000_000_000_000_000_000 + self._counter)
            name = f"{parent}/endpoints/{endpoint_id}"
            if name in self._endpoints:
                raise already_exists(f"Endpoint {name} already exists.")
            stamp = now()
            endpoint = Endpoint(name, stored, stamp, stamp)
            self._endpoints[name] = endpoint
            response = {"@type": ENDPOINT_TYPE, **self._render(endpoint)}
            return self._operation(name, CREATE_METADATA, response, stamp)

    def get_endpoint(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._settle()
            return self._render(self._endpoint(name))

    def list_endpoints(
        self, project: str, location: str, query: dict[str, str | None]
    ) -> dict[str, Any]:
        prefix = f"projects/{project}/locations/{location}/endpoints/"
        match = _filter(query.get("filter"))
        with self._lock:
            self._settle()
            rendered = [
                self._render(e)
                for n, e in self._endpoints.items()
                if n.startswith(prefix) and match(_record(e))
            ]
        return page(rendered, "endpoints", query, ("displayName", "createTime", "updateTime"))

    def update_endpoint(
        self, name: str, body: dict[str, Any], query: Mapping[str, str]
    ) -> dict[str, Any]:
        spec = camel_keys(body)
        rules.no_unknown(spec, er.ENDPOINT_FIELDS, "endpoint")
        if spec.get("name") not in (None, "", name):
            raise invalid(f"endpoint.name {spec['name']!r} does not match the URL's {name!r}.")
        paths = _mask(query.get("updateMask") or query.get("update_mask"))
        if not paths:
            raise invalid("UpdateEndpointRequest.update_mask is required.")
        for path in paths:
            if path in er.ENDPOINT_OUTPUT_ONLY:
                raise invalid(f"update_mask path {path!r} names an output-only field.")
            if path in er.ENDPOINT_FIELDS and path not in er.ENDPOINT_UPDATABLE:
                raise invalid(f"Endpoint.{path} cannot be updated.")
            if path not in er.ENDPOINT_UPDATABLE:
                raise invalid(f"Invalid update_mask path {path!r} for Endpoint.")
        changes: dict[str, Any] = {p: spec.get(p) for p in paths}
        if "displayName" in changes:
            rules.check_display_name(changes["displayName"], "Endpoint.display_name")
        if "labels" in changes:
            changes["labels"] = rules.check_labels(changes["labels"], "Endpoint.labels")
        split = None
        if "trafficSplit" in changes:
            split = er.traffic_split(changes.pop("trafficSplit"), "Endpoint.traffic_split")
        with self._lock:
            self._settle()
            endpoint = self._endpoint(name)
            if split is not None:
                self._refuse_concurrent(name, "UpdateEndpoint(traffic_split)")
            etag = spec.get("etag")
            if etag and etag != self._render(endpoint)["etag"]:
                raise ApiError(
                    409,
                    f"The etag {etag!r} does not match Endpoint {name}'s current etag; read it "
                    "again and retry.",
                    "ABORTED",
                )
            if split is not None:
                er.check_split_keys(split, set(endpoint.deployed))
                endpoint.traffic = split
            for path, value in changes.items():
                if value in (None, "", {}):
                    endpoint.fields.pop(path, None)
                else:
                    endpoint.fields[path] = value
            endpoint.update_time = now()
            self._save()
            return self._render(endpoint)

    def delete_endpoint(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._settle()
            endpoint = self._endpoint(name)
            self._refuse_concurrent(name, "DeleteEndpoint")
            if endpoint.deployed:
                ids = ", ".join(sorted(endpoint.deployed))
                raise failed_precondition(
                    f"Endpoint {name} has deployed models ({ids}); undeploy them before deleting "
                    "the endpoint."
                )
            del self._endpoints[name]
            return self._operation(name, DELETE_METADATA, {"@type": EMPTY}, now())

    def deploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        request = camel_keys(body)
        rules.no_unknown(
            request, frozenset({"endpoint", "deployedModel", "trafficSplit"}), "DeployModelRequest"
        )
        if request.get("endpoint") not in (None, "", name):
            raise invalid(f"endpoint {request['endpoint']!r} does not match the URL's {name!r}.")
        raw = request.get("deployedModel")
        if not isinstance(raw, dict):
            raise invalid("DeployModelRequest.deployed_model is required.")
        spec = camel_keys(raw)
        rules.no_unknown(spec, er.DEPLOYED_MODEL_FIELDS, "deployed_model")
        split = er.traffic_split(request.get("trafficSplit"), "DeployModelRequest.traffic_split")
        if not spec.get("model"):
            raise invalid("DeployedModel.model is required.")
        project, location, model_id, _ = parse_model_name(spec["model"])
        base = f"projects/{project}/locations/{location}/models/{model_id}"
        model = self._models.get_model(spec["model"])  # 404 for an unknown model/version/alias
        resources = er.prediction_resources(spec, model)
        if spec.get("displayName") is not None:
            rules.check_display_name(spec["displayName"], "DeployedModel.display_name")
        if spec.get("id"):
            er.check_deployed_model_id(spec["id"])
        deployed = {
            k: v
            for k, v in spec.items()
            if k not in er.DEPLOYED_MODEL_OUTPUT_ONLY
            and k not in ("dedicatedResources", "automaticResources", "sharedResources")
        }
        deployed.update(resources)
        deployed.update(
            model=base,
            modelVersionId=model["versionId"],
            displayName=spec.get("displayName") or model["displayName"],
        )
        with self._lock:
            self._settle()
            endpoint = self._endpoint(name)
            self._refuse_concurrent(name, "DeployModel")
            deployed_id = spec.get("id") or self._new_deployed_id()
            if deployed_id in endpoint.deployed or deployed_id in self._ids_on_the_way(name):
                raise already_exists(
                    f"DeployedModel with ID {deployed_id} already exists in Endpoint {name}."
                )
            if split:
                er.check_split_keys(split, set(endpoint.deployed) | {er.NEW_MODEL_KEY})
            stamp = now()
            deployed.update(id=deployed_id, createTime=stamp)
            if self.deploy_seconds > 0:  # lands later: nothing on the endpoint changes yet
                return self._start_running(
                    name, "deploy", DEPLOY_METADATA, stamp,
                    deployedModel=deployed, trafficSplit=split or None,
                )  # fmt: skip
            previous = dict(endpoint.traffic)
            endpoint.deployed[deployed_id] = deployed
            if split:
                endpoint.traffic = {
                    (deployed_id if k == er.NEW_MODEL_KEY else k): v for k, v in split.items()
                }
            endpoint.update_time = stamp
            self._save()
        self._confirm_version(endpoint, deployed_id, f"{base}@{model['versionId']}", previous)
        with self._lock:
            response = {"@type": DEPLOY_RESPONSE, "deployedModel": dict(deployed)}
            return self._operation(name, DEPLOY_METADATA, response, stamp)

    def undeploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        request = camel_keys(body)
        known = frozenset({"endpoint", "deployedModelId", "trafficSplit"})
        rules.no_unknown(request, known, "UndeployModelRequest")
        deployed_id = request.get("deployedModelId")
        if not deployed_id:
            raise invalid("UndeployModelRequest.deployed_model_id is required.")
        split = er.traffic_split(request.get("trafficSplit"), "UndeployModelRequest.traffic_split")
        with self._lock:
            self._settle()
            endpoint = self._endpoint(name)
            self._refuse_concurrent(name, "UndeployModel")
            if deployed_id not in endpoint.deployed:
                raise not_found(f"DeployedModel {deployed_id} not found in Endpoint {name}.")
            if self.deploy_seconds > 0:
                self._new_traffic_without(endpoint, deployed_id, split)  # refuse a bad one now
                return self._start_running(
                    name, "undeploy", UNDEPLOY_METADATA, now(),
                    deployedModelId=deployed_id, trafficSplit=split or None,
                )  # fmt: skip
            new_traffic = self._new_traffic_without(endpoint, deployed_id, split)
            del endpoint.deployed[deployed_id]
            endpoint.traffic = new_traffic
            endpoint.update_time = now()
            response = {"@type": UNDEPLOY_RESPONSE}
            return self._operation(name, UNDEPLOY_METADATA, response, endpoint.update_time)

    def _new_traffic_without(
        self, endpoint: Endpoint, deployed_id: str, split: dict[str, int] | None
    ) -> dict[str, int]:
        """UndeployModel's rules: the split the endpoint has once `deployed_id` is gone."""
        name = endpoint.name
        remaining = set(endpoint.deployed) - {deployed_id}
        if split:
            if split.get(deployed_id):
                raise invalid(
                    f"UndeployModelRequest.traffic_split gives DeployedModel {deployed_id}, "
                    "the one being undeployed, traffic."
                )
            split.pop(deployed_id, None)
            er.check_split_keys(split, remaining)
            new_traffic = split
        elif not remaining:
            new_traffic = {}  # the last model: the split always ends up empty
        elif endpoint.traffic.get(deployed_id):
            raise failed_precondition(
                f"DeployedModel {deployed_id} has {endpoint.traffic[deployed_id]}% of "
                f"Endpoint {name}'s traffic; set a traffic_split that gives it none (in this "
                "request or with UpdateEndpoint) before undeploying it."
            )
        else:
            new_traffic = {k: v for k, v in endpoint.traffic.items() if k != deployed_id}
        return new_traffic

    def mutate_deployed_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        request = camel_keys(body)
        known = frozenset({"endpoint", "deployedModel", "updateMask"})
        rules.no_unknown(request, known, "MutateDeployedModelRequest")
        spec = camel_keys(request.get("deployedModel") or {})
        paths = _mask(request.get("updateMask"))
        if not spec.get("id"):
            raise invalid("MutateDeployedModelRequest.deployed_model.id is required.")
        if not paths:
            raise invalid("MutateDeployedModelRequest.update_mask is required.")
        for path in paths:
            if path not in er.MUTABLE_DEPLOYED_PATHS:
                raise invalid(f"update_mask path {path!r} cannot be mutated on a DeployedModel.")
        with self._lock:
            self._settle()
            endpoint = self._endpoint(name)
            self._refuse_concurrent(name, "MutateDeployedModel")
            current = endpoint.deployed.get(spec["id"])
            if current is None:
                raise not_found(f"DeployedModel {spec['id']} not found in Endpoint {name}.")
            updated = json.loads(json.dumps(current))
            for path in paths:
                head, _, tail = path.partition(".")
                source = camel_keys(spec.get(head) or {}) if tail else spec
                target = updated.get(head) if tail else updated
                if target is None or not isinstance(target, dict):
                    raise invalid(f"DeployedModel {spec['id']} has no {head}.")
                key = tail or head
                if key in source:
                    target[key] = source[key]
                else:
                    target.pop(key, None)
            for kind, where in (
                ("dedicatedResources", "dedicated_resources"),
                ("automaticResources", "automatic_resources"),
            ):
                if kind in updated:
                    dedicated = kind == "dedicatedResources"
                    updated[kind].update(er.replicas(updated[kind], where, dedicated=dedicated))
            endpoint.deployed[spec["id"]] = updated
            endpoint.update_time = now()
            response = {"@type": MUTATE_RESPONSE, "deployedModel": dict(updated)}
            return self._operation(name, MUTATE_METADATA, response, endpoint.update_time)

    def predict(self, name: str) -> dict[str, Any]:
        with self._lock:
            endpoint = self._endpoint(name)
            if not endpoint.deployed:
                raise failed_precondition(f"Endpoint {name} has no deployed models.")
        raise ApiError(
            501,
            "The Vertex AI emulator does not serve predictions (no model server runs here).",
            "UNIMPLEMENTED",
        )

    def get_operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            self._settle()
            if name in self._running:
                return self._running_view(name)
            return poll_operation(self._operations, name)

    def list_operations(self, endpoint_name: str, query: Mapping[str, Any]) -> dict[str, Any]:
        """ListOperations on an endpoint (google.longrunning; the SDK's REST binding is
        `/ui/{endpoint}/operations`). Filter: none, `done=true` or `done=false`."""
        raw = query.get("filter") or ""
        wanted: bool | None = None
        if raw:
            match = _DONE_FILTER.fullmatch(str(raw))
            if match is None:
                raise invalid(
                    f"Unsupported operations filter {raw!r}: use done=true or done=false."
                )
            wanted = match.group(1) == "true"
        prefix = endpoint_name + "/operations/"
        with self._lock:
            self._settle()
            self._endpoint(endpoint_name)
            found: list[dict[str, Any]] = []
            if wanted is not True:
                found += [self._running_view(n) for n in self._running if n.startswith(prefix)]
            if wanted is not False:
                found += [o.done for n, o in self._operations.items() if n.startswith(prefix)]
        found.sort(key=lambda o: _num(o["name"].rsplit("/", 1)[-1]))
        return {"operations": found} if found else {}

    # ---- operations that land later --------------------------------------------------------
    def _refuse_concurrent(self, name: str, what: str) -> None:
        if self.concurrent_mutations != "reject":
            return
        running = sorted(n for n, r in self._running.items() if r["endpoint"] == name)
        if running:
            raise failed_precondition(
                f"Endpoint {name} has an operation in progress ({running[0]}); {what} can start "
                "once it is done. Wait for the operation, then retry."
            )

    def _ids_on_the_way(self, name: str) -> set[str]:
        return {
            r["deployedModel"]["id"]
            for r in self._running.values()
            if r["endpoint"] == name and r["kind"] == "deploy"
        }

    def _start_running(
        self, endpoint: str, kind: str, metadata_type: str, stamp: str, **request: Any
    ) -> dict[str, Any]:
        self._counter += 1
        op = f"{endpoint}/operations/{self._counter}"
        self._running[op] = {
            "endpoint": endpoint,
            "kind": kind,
            "metadataType": metadata_type,
            "createTime": stamp,
            "landsAt": self._clock() + self.deploy_seconds,
            **request,
        }
        self._save()
        return self._running_view(op)

    def _running_view(self, op: str) -> dict[str, Any]:
        return {"name": op, "metadata": self._running_view_of(op, self._running[op])}

    def _settle(self) -> None:
        """Land every running operation whose time has come, oldest first (lock held)."""
        due = sorted(
            (r["landsAt"], _num(n.rsplit("/", 1)[-1]), n)
            for n, r in self._running.items()
            if r["landsAt"] <= self._clock()
        )
        for _, _, op in due:
            running = self._running.pop(op)
            try:
                response = self._land(running)
            except ApiError as exc:
                done = {
                    "name": op,
                    "metadata": self._running_view_of(op, running),
                    "done": True,
                    "error": {"code": _RPC_CODES.get(exc.status, 2), "message": exc.message},
                }
                self._operations[op] = Operation(done, self._models.operation_polls)
                continue
            done = {"name": op, "metadata": self._running_view_of(op, running), "done": True,
                    "response": response}  # fmt: skip
            self._operations[op] = Operation(done, self._models.operation_polls)
        if due:
            self._save()

    def _running_view_of(self, op: str, running: dict[str, Any]) -> dict[str, Any]:
        generic = {"createTime": running["createTime"], "updateTime": now()}
        return {"@type": running["metadataType"], "genericMetadata": generic}

    def _land(self, running: dict[str, Any]) -> dict[str, Any]:
        """Apply a landing DeployModel/UndeployModel to the endpoint as it is *now*."""
        endpoint = self._endpoints.get(running["endpoint"])
        if endpoint is None:
            raise not_found(f"Endpoint {running['endpoint']} not found.")
        split = running.get("trafficSplit")
        stamp = now()
        if running["kind"] == "deploy":
            deployed = dict(running["deployedModel"])
            if split:
                er.check_split_keys(split, set(endpoint.deployed) | {er.NEW_MODEL_KEY})
            endpoint.deployed[deployed["id"]] = deployed
            if split:
                endpoint.traffic = {
                    (deployed["id"] if k == er.NEW_MODEL_KEY else k): v for k, v in split.items()
                }
            endpoint.update_time = stamp
            return {"@type": DEPLOY_RESPONSE, "deployedModel": deployed}
        deployed_id = running["deployedModelId"]
        if deployed_id not in endpoint.deployed:
            raise not_found(f"DeployedModel {deployed_id} not found in Endpoint {endpoint.name}.")
        new_traffic = self._new_traffic_without(endpoint, deployed_id, dict(split or {}) or None)
        del endpoint.deployed[deployed_id]
        endpoint.traffic = new_traffic
        endpoint.update_time = stamp
        return {"@type": UNDEPLOY_RESPONSE}

    # ---- internals -----------------------------------------------------------------------
    def _endpoint(self, name: str) -> Endpoint:
        if not ENDPOINT_NAME.fullmatch(name):
            raise invalid(
                f"Invalid resource name {name!r}: expected projects/P/locations/L/endpoints/E."
            )
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise not_found(f"Endpoint {name} not found.")
        return endpoint

    def _new_deployed_id(self) -> str:
        self._counter += 1
        return str(3_000_000_000_000_000_000 + self._counter)

    def _confirm_version(
        self, endpoint: Endpoint, deployed_id: str, version: str, previous: dict[str, int]
    ) -> None:
        """Re-read the deployed version (outside our lock); undo the deployment if it is gone."""
        try:
            self._models.get_model(version)
        except ApiError:
            with self._lock:
                if endpoint.deployed.pop(deployed_id, None) is not None:
                    endpoint.traffic = previous
                    self._save()
            raise not_found(f"Model {version} was deleted while it was being deployed.") from None

    def _operation(
        self, resource: str, metadata_type: str, response: dict[str, Any], stamp: str
    ) -> dict[str, Any]:
        self._counter += 1
        name = f"{resource}/operations/{self._counter}"
        answer = start_operation(
            self._operations, name, metadata_type, response, stamp, self._models.operation_polls
        )
        self._save()
        return answer

    def _render(self, endpoint: Endpoint) -> dict[str, Any]:
        out = dict(endpoint.fields)
        out.update(name=endpoint.name, createTime=endpoint.create_time)
        out["updateTime"] = endpoint.update_time
        if endpoint.deployed:
            out["deployedModels"] = [dict(d) for d in endpoint.deployed.values()]
        if endpoint.traffic:
            out["trafficSplit"] = dict(endpoint.traffic)
        return with_etag(out)

    def _save(self) -> None:
        if not self._state_file:
            return
        data = {
            "counter": self._counter,
            "endpoints": [asdict(e) for e in self._endpoints.values()],
            "operations": {n: asdict(o) for n, o in self._operations.items()},
            "running": self._running,
        }
        write_state(self._state_file, data)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        self._counter = data.get("counter", 0)
        for raw in data.get("endpoints", []):
            self._endpoints[raw["name"]] = Endpoint(**raw)
        self._operations.update(load_operations(data.get("operations", {})))
        self._running.update(data.get("running", {}))


_RPC_CODES = {"INVALID_ARGUMENT": 3, "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "FAILED_PRECONDITION": 9}


def _num(text: str) -> int:
    return int(text) if text.isdigit() else 0


def state_file_for(model_state_file: str | None) -> str | None:
    """Endpoints persist next to the model store's file: `F` -> `F.endpoints`."""
    return f"{model_state_file}.endpoints" if model_state_file else None


def _mask(raw: Any) -> list[str]:
    """A FieldMask as JSON (`"a,b.c"`) or as an object (`{"paths": [...]}`); names in camelCase."""
    if isinstance(raw, Mapping):
        raw = ",".join(raw.get("paths") or [])
    if not raw:
        return []
    return [".".join(camel(p) for p in path.strip().split(".")) for path in str(raw).split(",")]


def _filter(expression: str | None) -> filters.Predicate:
    """ListEndpoints: `endpoint` (the id) and `display_name` with =/!=, and the label forms.

    The shared filter module (the documented forms only) knows the id field as `model`, so
    `endpoint` terms are parsed as `model` terms and its messages are mapped back.
    """
    if not expression:
        return filters.parse(None, allowed=())
    if _FILTER_MODEL.search(expression):
        raise invalid(f"Unsupported filter field 'model' in {expression!r}.")
    translated = _FILTER_ENDPOINT.sub(lambda m: f"{m.group(1)}{m.group(2)}model", expression)
    try:
        return filters.parse(translated, allowed=("display_name", "displayName", "model"))
    except ApiError as exc:
        raise invalid(_MESSAGE_MODEL.sub("endpoint", exc.message)) from None


def _record(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "model": endpoint.name.rsplit("/", 1)[1],
        "displayName": endpoint.fields.get("displayName"),
        "labels": endpoint.fields.get("labels") or {},
    }
