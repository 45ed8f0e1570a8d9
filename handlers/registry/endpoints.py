"""Vertex AI endpoints: deploy one exact model version, split traffic, undeploy, roll back.

`EndpointRegistry` is a `VertexRegistry` (same model client, same `_call`: time-bounded retry of
transient failures and the translation of SDK errors into `PermanentError` / `TransientError`)
with the GAPIC `aiplatform_v1.EndpointServiceClient` beside it, built by `gapic_client`, so it
honours `VERTEX_AI_EMULATOR_HOST` exactly as `make_registry` does.

Long operations (CreateEndpoint, DeployModel, UndeployModel) are *started* by one call that returns
an `Operation`; `wait` polls it (with a progress callback and a deadline) or the caller leaves it
running. Starting one is never retried automatically: a retried DeployModel whose first reply was
lost would deploy twice.

Traffic splits are plain `{deployed_model_id: percent}` maps computed by the pure functions at the
bottom (`split_with_new`, `split_without`, `split_with`), so the rules are tested without Vertex.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import PermanentError, TransientError
from ..settings import Settings
from .interface import ModelNotFound
from .labels import MANAGED_BY, MANAGED_BY_LABEL
from .vertex import VertexRegistry, gapic_client, rpc_timeout
from .vertex_errors import AlreadyExists
from .vertex_types import quote

_LOG = logging.getLogger(__name__)
DEFAULT_MACHINE_TYPE = "n1-standard-2"  # DeployedModel's documented default machine type
NEW_DEPLOYMENT = "0"  # DeployModelRequest.traffic_split: the key of the model being deployed
MODEL_LABEL = "registrar-model"  # on an endpoint the registrar manages: the id of the one model
# CreateEndpointRequest.endpoint_id: a letter then up to 62 of [a-z0-9-] (not ending in '-'), or
# up to 9 digits without a leading zero. Other names become display names (server-chosen id).
ENDPOINT_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}")
_ENDPOINT_NAME = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/:@]+")


@dataclass(frozen=True)
class DeployedModelInfo:
    id: str
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    display_name: str
    machine_type: str = ""
    accelerator: str = ""  # "NVIDIA_TESLA_T4 x1", or "" for none
    min_replicas: int = 0
    max_replicas: int = 0
    create_time: datetime | None = None

    @property
    def version_name(self) -> str:
        return f"{self.model}@{self.version_id}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version_id": self.version_id,
            "version_name": self.version_name,
            "display_name": self.display_name,
            "machine_type": self.machine_type,
            "accelerator": self.accelerator or None,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "create_time": self.create_time,
        }


@dataclass(frozen=True)
class EndpointInfo:
    name: str  # projects/P/locations/L/endpoints/E
    display_name: str
    deployed: tuple[DeployedModelInfo, ...] = ()  # oldest first
    traffic: dict[str, int] = field(default_factory=dict)
    etag: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def share(self, deployed_id: str) -> int:
        return self.traffic.get(deployed_id, 0)

    def deployment(self, deployed_id: str) -> DeployedModelInfo | None:
        return next((d for d in self.deployed if d.id == deployed_id), None)

    def of_version(self, model: str, version_id: str) -> list[DeployedModelInfo]:
        return [d for d in self.deployed if d.model == model and d.version_id == version_id]

    @property
    def newest(self) -> DeployedModelInfo | None:
        return self.deployed[-1] if self.deployed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "display_name": self.display_name,
            "traffic_split": dict(self.traffic),
            "deployed_models": [
                {**d.as_dict(), "traffic_percent": self.share(d.id)} for d in self.deployed
            ],
        }


@dataclass
class Operation:
    """A started long-running operation; `wait` fills in `done`, `error` and `result`."""

    name: str
    kind: str  # the RPC: CreateEndpoint, DeployModel, UndeployModel
    endpoint: str
    future: Any = field(default=None, repr=False)  # google.api_core.operation.Operation
    done: bool = False
    error: str | None = None
    result: Any = field(default=None, repr=False)
    elapsed: float = 0.0

    @property
    def state(self) -> str:
        if not self.done:
            return "running"
        return "failed" if self.error else "succeeded"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "state": self.state,
            "done": self.done,
            "error": self.error,
            "elapsed_s": round(self.elapsed, 3),
        }


def make_endpoint_registry(settings: Settings) -> EndpointRegistry:
    """Both clients for the process: the emulator when `VERTEX_AI_EMULATOR_HOST` is set."""
    from google.cloud import aiplatform_v1

    return EndpointRegistry(
        gapic_client(aiplatform_v1.ModelServiceClient, settings),
        gapic_client(aiplatform_v1.EndpointServiceClient, settings),
        project=settings.project,
        location=settings.location,
        rpc_timeout=rpc_timeout(settings),
    )


class EndpointRegistry(VertexRegistry):
    def __init__(self, model_client: Any, endpoint_client: Any, **options: Any) -> None:
        super().__init__(model_client, **options)
        self._endpoints = endpoint_client

    def endpoint_name(self, endpoint: str) -> str:
        return (
            endpoint if endpoint.startswith("projects/") else f"{self.parent}/endpoints/{endpoint}"
        )

    # ---- reading ---------------------------------------------------------------------------
    def get_endpoint(self, endpoint: str) -> EndpointInfo:
        name = self.endpoint_name(endpoint)
        found = self._call(
            "GetEndpoint", lambda: self._endpoints.get_endpoint(**self._opts(name=name))
        )
        return endpoint_info(found)

    def list_endpoints(self, display_name: str | None = None) -> list[EndpointInfo]:
        query = {"filter": f"display_name={quote(display_name)}"} if display_name else {}
        found = self._call(
            "ListEndpoints",
            lambda: list(self._endpoints.list_endpoints(**self._opts(parent=self.parent, **query))),
        )
        return [endpoint_info(e) for e in found]

    def find_endpoint(self, ref: str) -> EndpointInfo | None:
        """`ref` is a resource name, an endpoint id or a display name; None when nothing matches.

        Raises PermanentError(code="ambiguous_endpoint") when several endpoints carry the name.
        """
        if ref.startswith("projects/"):
            if not _ENDPOINT_NAME.fullmatch(ref):
                raise PermanentError(
                    f"{ref!r} is not an endpoint: expected projects/P/locations/L/endpoints/E, "
                    "an endpoint id or an endpoint display name.",
                    code="bad_endpoint",
                )
            try:
                return self.get_endpoint(ref)
            except ModelNotFound:
                return None
        if ENDPOINT_ID.fullmatch(ref) or ref.isdigit():  # server-chosen ids are longer numbers
            try:
                return self.get_endpoint(ref)
            except ModelNotFound:
                pass
        found = self.list_endpoints(ref)
        if len(found) > 1:
            names = ", ".join(sorted(e.name for e in found))
            raise PermanentError(
                f"{len(found)} endpoints are named {ref!r} ({names}); name one by its id or "
                "resource name.",
                code="ambiguous_endpoint",
            )
        return found[0] if found else None

    def require_endpoint(self, ref: str) -> EndpointInfo:
        found = self.find_endpoint(ref)
        if found is None:
            raise ModelNotFound(
                f"no endpoint {ref!r} in {self.parent} (by id or display name). "
                "`registrar deploy NAME@VERSION --endpoint E` creates it."
            )
        return found

    def serving_image(self, version_name: str) -> str:
        """The serving container image registered with a model version."""
        name = self.model_name(version_name)
        model = self._call("GetModel", lambda: self._client.get_model(**self._opts(name=name)))
        return model.container_spec.image_uri

    # ---- long operations (started here, waited for with `wait`) ------------------------------
    def create_endpoint(self, ref: str, labels: Mapping[str, str] | None = None) -> Operation:
        """Create an endpoint named `ref` (its id too, when `ref` is a valid endpoint id)."""
        from google.cloud.aiplatform_v1 import types

        endpoint_id = ref if ENDPOINT_ID.fullmatch(ref) else ""
        request = types.CreateEndpointRequest(
            parent=self.parent,
            endpoint=types.Endpoint(
                display_name=ref, labels={MANAGED_BY_LABEL: MANAGED_BY, **(labels or {})}
            ),
            endpoint_id=endpoint_id,
        )
        future = self._call(
            "CreateEndpoint",
            lambda: self._endpoints.create_endpoint(**self._opts(request=request)),
            retry=None,
        )
        target = self.endpoint_name(endpoint_id) if endpoint_id else f"{self.parent}/endpoints/?"
        return Operation(future.operation.name, "CreateEndpoint", target, future)

    def ensure_endpoint(
        self,
        ref: str,
        *,
        timeout: float = 120.0,
        on_progress: Progress | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> tuple[EndpointInfo, bool]:
        """The endpoint `ref` names, created (and waited for) when there is none; (info, created)."""
        found = self.find_endpoint(ref)
        if found is not None:
            return found, False
        try:
            operation = self.wait(
                self.create_endpoint(ref, labels), timeout=timeout, on_progress=on_progress
            )
        except AlreadyExists:  # created by someone else meanwhile
            return self.require_endpoint(ref), False
        if not operation.done:
            raise TransientError(
                f"creating endpoint {ref!r} did not finish within {timeout:.0f} s (operation "
                f"{operation.name} keeps running); run the command again when it is done.",
                code="operation_running",
            )
        return endpoint_info(operation.result), True

    def deploy(
        self,
        endpoint: str,
        version_name: str,
        *,
        traffic_split: Mapping[str, int],
        display_name: str,
        machine_type: str = DEFAULT_MACHINE_TYPE,
        accelerator: tuple[str, int] | None = None,
        min_replicas: int = 1,
        max_replicas: int = 1,
    ) -> Operation:
        """Start DeployModel of exactly `version_name` (MODEL@VERSION_ID); `traffic_split` names
        the new deployment `NEW_DEPLOYMENT` ("0")."""
        from google.cloud.aiplatform_v1 import types

        if "@" not in version_name or not version_name.rsplit("@", 1)[1].isdigit():
            raise PermanentError(
                f"{version_name!r} is not one exact version (MODEL@VERSION_ID): an alias would "
                "follow later moves, a deployment must not.",
                code="bad_version",
            )
        spec = types.MachineSpec(machine_type=machine_type)
        if accelerator:
            spec.accelerator_type = accelerator[0]
            spec.accelerator_count = accelerator[1]
        deployed = types.DeployedModel(
            model=self.model_name(version_name),
            display_name=display_name[:128],
            dedicated_resources=types.DedicatedResources(
                machine_spec=spec,
                min_replica_count=min_replicas,
                max_replica_count=max(max_replicas, min_replicas),
            ),
        )
        name = self.endpoint_name(endpoint)
        future = self._call(
            "DeployModel",
            lambda: self._endpoints.deploy_model(
                **self._opts(
                    endpoint=name, deployed_model=deployed, traffic_split=dict(traffic_split)
                )
            ),
            retry=None,
        )
        return Operation(future.operation.name, "DeployModel", name, future)

    def undeploy(
        self, endpoint: str, deployed_id: str, *, traffic_split: Mapping[str, int] | None = None
    ) -> Operation:
        name = self.endpoint_name(endpoint)
        future = self._call(
            "UndeployModel",
            lambda: self._endpoints.undeploy_model(
                **self._opts(
                    endpoint=name,
                    deployed_model_id=deployed_id,
                    traffic_split=dict(traffic_split or {}),
                )
            ),
            retry=None,
        )
        return Operation(future.operation.name, "UndeployModel", name, future)

    def wait(
        self,
        operation: Operation,
        *,
        timeout: float,
        on_progress: Progress | None = None,
    ) -> Operation:
        """Poll until done or `timeout` s; a failed operation raises its translated error.

        On timeout the operation is returned with `done=False`: it keeps running on Vertex.
        """
        started = time.monotonic()
        delay = self._poll_initial
        while True:
            operation.elapsed = time.monotonic() - started
            if self._call("GetOperation", lambda: operation.future.done(retry=None)):
                break
            if on_progress is not None:
                on_progress(operation)
            left = timeout - operation.elapsed
            if left <= 0:
                return operation
            time.sleep(min(delay, left))
            delay = min(delay * 1.5, 10.0)
        operation.done = True
        operation.elapsed = time.monotonic() - started
        try:
            operation.result = self._call(
                operation.kind, lambda: operation.future.result(timeout=0), retry=None
            )
        except (PermanentError, TransientError) as exc:
            operation.error = str(exc)
            raise
        return operation

    def operation_state(self, name: str) -> Operation:
        """One look at an operation by name (from `--no-wait`, or a record)."""
        from google.longrunning import operations_pb2

        match = re.match(r"(projects/[^/]+/locations/[^/]+/endpoints/[^/]+)/operations/", name)
        if match is None:
            raise PermanentError(
                f"{name!r} is not an endpoint operation: expected "
                "projects/P/locations/L/endpoints/E/operations/ID.",
                code="bad_operation",
            )
        found = self._call(
            "GetOperation",
            lambda: self._endpoints.get_operation(
                request=operations_pb2.GetOperationRequest(name=name),
                retry=None,
                timeout=self._rpc_timeout,
            ),
        )
        kind = found.metadata.type_url.rsplit(".", 1)[-1].replace("OperationMetadata", "")
        operation = Operation(name, kind or "Operation", match.group(1), done=found.done)
        if found.done and found.HasField("error"):
            operation.error = f"{found.error.message} (code {found.error.code})"
        return operation

    def running_operations(self, endpoint: str) -> list[str]:
        """Names of the operations still running on the endpoint (ListOperations `done=false`):
        a DeployModel started now would overwrite the split they set when they land."""
        from google.longrunning import operations_pb2

        name = self.endpoint_name(endpoint)
        request = operations_pb2.ListOperationsRequest(name=name, filter="done=false")
        found = self._call(
            "ListOperations",
            lambda: self._endpoints.list_operations(
                request=request, retry=None, timeout=self._rpc_timeout
            ),
        )
        return sorted(op.name for op in found.operations if not op.done)

    def set_labels(self, endpoint: str, labels: Mapping[str, str]) -> EndpointInfo:
        """UpdateEndpoint(labels), guarded by the endpoint's etag."""
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import field_mask_pb2

        current = self.get_endpoint(endpoint)
        update = types.Endpoint(name=current.name, labels=dict(labels), etag=current.etag)
        mask = field_mask_pb2.FieldMask(paths=["labels"])
        updated = self._call(
            "UpdateEndpoint",
            lambda: self._endpoints.update_endpoint(
                **self._opts(endpoint=update, update_mask=mask)
            ),
            retry=None,
        )
        return endpoint_info(updated)

    # ---- traffic ---------------------------------------------------------------------------
    def set_traffic(
        self,
        endpoint: str,
        compute: Callable[[EndpointInfo], Mapping[str, int]],
        *,
        attempts: int = 5,
    ) -> EndpointInfo:
        """UpdateEndpoint(traffic_split=compute(current)), guarded by the endpoint's etag: a
        concurrent change makes Vertex refuse (ABORTED), and the split is computed again."""
        from google.cloud.aiplatform_v1 import types
        from google.protobuf import field_mask_pb2

        mask = field_mask_pb2.FieldMask(paths=["traffic_split"])
        for _ in range(attempts):
            current = self.get_endpoint(endpoint)
            split = dict(compute(current))
            if split == current.traffic:
                return current
            update = types.Endpoint(name=current.name, traffic_split=split, etag=current.etag)
            try:
                updated = self._call(
                    "UpdateEndpoint",
                    lambda u=update, m=mask: self._endpoints.update_endpoint(
                        **self._opts(endpoint=u, update_mask=m)
                    ),
                    retry=None,
                )
            except (AlreadyExists, TransientError) as exc:  # etag mismatch (409) or a blip
                _LOG.info("traffic update of %s raced (%s); reading it again", current.name, exc)
                continue
            return endpoint_info(updated)
        raise TransientError(
            f"the traffic split of {endpoint} kept changing under {attempts} attempts; "
            "run the command again.",
            code="endpoint_busy",
        )


Progress = Callable[[Operation], None]


# ---- converting replies -----------------------------------------------------------------------
def endpoint_info(endpoint: Any) -> EndpointInfo:
    deployed = [deployed_info(d) for d in endpoint.deployed_models]
    deployed.sort(key=lambda d: (d.create_time or datetime.min, _num(d.id)))
    return EndpointInfo(
        name=endpoint.name,
        display_name=endpoint.display_name,
        deployed=tuple(deployed),
        traffic={str(k): int(v) for k, v in endpoint.traffic_split.items()},
        etag=endpoint.etag,
        labels=dict(endpoint.labels),
    )


def deployed_info(deployed: Any) -> DeployedModelInfo:
    resources = deployed.dedicated_resources
    spec = resources.machine_spec
    accelerator = ""
    if spec.accelerator_count:
        kind = getattr(spec.accelerator_type, "name", str(spec.accelerator_type))
        accelerator = f"{kind} x{spec.accelerator_count}"
    created = deployed.create_time or None
    if created is not None and created.tzinfo is not None:
        created = created.replace(tzinfo=None)  # compare naive UTC throughout
    return DeployedModelInfo(
        id=deployed.id,
        model=deployed.model.split("@", 1)[0],
        version_id=deployed.model_version_id,
        display_name=deployed.display_name,
        machine_type=spec.machine_type,
        accelerator=accelerator,
        min_replicas=resources.min_replica_count,
        max_replicas=resources.max_replica_count,
        create_time=created,
    )


# ---- traffic arithmetic (pure) ----------------------------------------------------------------
def proportional(weights: Mapping[str, int], total: int) -> dict[str, int]:
    """Share `total` (whole percents) in proportion to `weights`; largest remainder rounding, so
    the parts add up to `total` exactly. Zero parts are left out."""
    weight = sum(weights.values())
    if total <= 0 or weight <= 0:
        return {}
    exact = {k: total * w / weight for k, w in weights.items()}
    parts = {k: int(v) for k, v in exact.items()}
    left = total - sum(parts.values())
    for key in sorted(exact, key=lambda k: (parts[k] - exact[k], k))[:left]:
        parts[key] += 1
    return {k: v for k, v in parts.items() if v}


def split_with_new(
    current: Mapping[str, int], deployed_ids: Sequence[str], percent: int
) -> dict[str, int]:
    """DeployModel's split: `percent` to the new deployment ("0"), the rest to the deployments
    that serve now, in their current proportions. Nothing else serving: the new one takes 100."""
    _check_percent(percent)
    serving = {k: v for k, v in current.items() if k in deployed_ids and v > 0}
    if not serving or percent == 100:
        return {NEW_DEPLOYMENT: 100}
    split = proportional(serving, 100 - percent)
    if percent:
        split[NEW_DEPLOYMENT] = percent
    return split


def split_without(
    current: Mapping[str, int], deployed_ids: Sequence[str], removed: str
) -> dict[str, int]:
    """The split once `removed` is gone: its share goes to the deployments that serve besides it,
    in their proportions; when none does, all of it goes to the deployment made just before it
    (`deployed_ids` is oldest first). Empty when nothing else is deployed."""
    others = [d for d in deployed_ids if d != removed]
    if not others:
        return {}
    serving = {k: current.get(k, 0) for k in others if current.get(k, 0) > 0}
    if serving:
        return proportional(serving, 100)
    position = list(deployed_ids).index(removed) if removed in deployed_ids else len(deployed_ids)
    before = [d for d in deployed_ids[:position] if d != removed]
    return {(before[-1] if before else others[-1]): 100}


def split_with(
    current: Mapping[str, int], deployed_ids: Sequence[str], assigned: Mapping[str, int]
) -> dict[str, int]:
    """`registrar traffic E ID=N …`: the named deployments get their percent; what is left goes to
    the others in their current proportions. Raises PermanentError(code="bad_traffic")."""
    unknown = sorted(set(assigned) - set(deployed_ids))
    if unknown:
        raise PermanentError(
            f"not deployed on this endpoint: {', '.join(unknown)}", code="bad_traffic"
        )
    for value in assigned.values():
        _check_percent(value)
    left = 100 - sum(assigned.values())
    if left < 0:
        raise PermanentError(
            f"the percentages add up to {100 - left}; at most 100 can be given.", code="bad_traffic"
        )
    split = {k: v for k, v in assigned.items() if v}
    if left == 0:
        return split
    rest = {k: current.get(k, 0) for k in deployed_ids if k not in assigned}
    shares = proportional({k: v for k, v in rest.items() if v > 0}, left)
    if not shares:
        where = "no other deployment serves now" if rest else "every deployment is named"
        raise PermanentError(
            f"the percentages add up to {100 - left}, and {where} to take the other {left}%: "
            "give every deployment its share so that they add up to 100.",
            code="bad_traffic",
        )
    split.update(shares)
    return split


def _check_percent(value: int) -> None:
    if not 0 <= value <= 100:
        raise PermanentError(f"{value}% is not a percentage (0-100).", code="bad_traffic")


def _num(text: str) -> int:
    return int(text) if text.isdigit() else 0
