"""The Vertex AI v1 EndpointService: endpoints, deployed models and traffic splits.

State lives here, next to the model `Store` it asks about models (public calls only). The model
store in turn asks `deployments()` whether a version is deployed (`Store.set_deployment_lookup`),
so DeleteModelVersion / DeleteModel refuse deployed versions as Vertex does.

Locking: one lock guards this state. It is never held while calling into the model store, and
the model store calls `deployments()` while holding its own lock, so the two locks never wait on
each other. DeployModel records the deployment first and then re-reads the model version; if a
concurrent DeleteModelVersion removed it in between, the deployment is rolled back (404), so a
deployed version can never be one that was deleted.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

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
    def __init__(self, models: Store, state_file: str | None = None) -> None:
        self._models = models
        self._lock = threading.RLock()
        self._state_file = state_file
        self._endpoints: dict[str, Endpoint] = {}
        self._operations: dict[str, Operation] = {}
        self._counter = 0
        if state_file and os.path.exists(state_file):
            self._load(state_file)
        models.set_deployment_lookup(self.is_deployed)

    # ---- admin and the model store's hook -----------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._endpoints.clear()
            self._operations.clear()
            self._counter = 0
            self._save()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "endpoints": {n: self._render(e) for n, e in self._endpoints.items()},
                "endpoint_operations": len(self._operations),
            }

    def deployments(self, model_name: str, version_id: str | None = None) -> list[dict[str, str]]:
        """DeployedModelRefs of `model_name` (a `@selector` is ignored) at `version_id` (None: any).

        The model store calls this (with its own lock held) before deleting a version or a model.
        """
        base = model_name.split("@", 1)[0]
        with self._lock:
            return [
                {"endpoint": e.name, "deployedModelId": d["id"]}
                for e in self._endpoints.values()
                for d in e.deployed.values()
                if d["model"] == base and version_id in (None, d["modelVersionId"])
            ]

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
            return self._render(self._endpoint(name))

    def list_endpoints(
        self, project: str, location: str, query: dict[str, str | None]
    ) -> dict[str, Any]:
        prefix = f"projects/{project}/locations/{location}/endpoints/"
        match = _filter(query.get("filter"))
        with self._lock:
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
            endpoint = self._endpoint(name)
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
            endpoint = self._endpoint(name)
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
            endpoint = self._endpoint(name)
            deployed_id = spec.get("id") or self._new_deployed_id()
            if deployed_id in endpoint.deployed:
                raise already_exists(
                    f"DeployedModel with ID {deployed_id} already exists in Endpoint {name}."
                )
            if split:
                er.check_split_keys(split, set(endpoint.deployed) | {er.NEW_MODEL_KEY})
            stamp = now()
            deployed.update(id=deployed_id, createTime=stamp)
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
            endpoint = self._endpoint(name)
            if deployed_id not in endpoint.deployed:
                raise not_found(f"DeployedModel {deployed_id} not found in Endpoint {name}.")
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
            del endpoint.deployed[deployed_id]
            endpoint.traffic = new_traffic
            endpoint.update_time = now()
            response = {"@type": UNDEPLOY_RESPONSE}
            return self._operation(name, UNDEPLOY_METADATA, response, endpoint.update_time)

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
            endpoint = self._endpoint(name)
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
            return poll_operation(self._operations, name)

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
        }
        write_state(self._state_file, data)

    def _load(self, path: str) -> None:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        self._counter = data.get("counter", 0)
        for raw in data.get("endpoints", []):
            self._endpoints[raw["name"]] = Endpoint(**raw)
        self._operations.update(load_operations(data.get("operations", {})))


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
