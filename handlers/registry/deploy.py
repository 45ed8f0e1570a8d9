"""Deploying registered versions: the serving-image check, the shape of a new deployment, and the
function's optional canary (`DEPLOY_ENDPOINT`, `DEPLOY_TRAFFIC`).

The canary is *started*, never waited for: a function run lasts at most 540 s and a Vertex
deployment often takes longer. The record of the upload notes the started operation
(`deployment.operation`); `registrar operation NAME --wait` follows it. A failure to start it never
undoes the registration: the note says what happened and what to run instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .. import serving_images
from ..errors import PermanentError, TransientError
from ..gcs.ledger import Ledger
from ..gcs.objects import ObjectStore
from ..gcs.records import Records
from ..serving_images import ImageStatus
from ..settings import Settings
from .canary import Canaries, endpoint_ref, model_id
from .endpoints import (
    DEFAULT_MACHINE_TYPE,
    EndpointInfo,
    EndpointRegistry,
    make_endpoint_registry,
)
from .interface import DEFAULT_ALIAS, RegisteredVersion

_LOG = logging.getLogger(__name__)
CANARY_ENDPOINT_TIMEOUT = 60.0  # creating the endpoint (metadata only) inside a function run


def check_serving_image(
    image: str, today: date | None = None, *, replacement: str | None = None
) -> ImageStatus:
    """The one serving-image rule (handlers/serving_images.py), as registration applies it:
    refused (ok=False) past its end of availability, a warning within 60 days; `replacement`
    is the image the message suggests."""
    return serving_images.check(image, today, replacement=replacement)


@dataclass(frozen=True)
class Shape:
    """Machines for a new deployment."""

    machine_type: str = DEFAULT_MACHINE_TYPE
    accelerator: tuple[str, int] | None = None
    max_replicas: int = 1
    copied_from: str | None = None  # the deployed model id whose machines are copied


def shape_for(endpoint: EndpointInfo, machine_type: str | None = None) -> Shape:
    """A canary runs on the machines of what serves now (the deployment with the most traffic),
    so the two compare fairly; `machine_type` overrides; an empty endpoint gets the default."""
    serving = sorted(
        (d for d in endpoint.deployed if d.machine_type),
        key=lambda d: (endpoint.share(d.id), d.create_time or datetime.min),
    )
    if not serving:
        return Shape(machine_type or DEFAULT_MACHINE_TYPE)
    template = serving[-1]
    if machine_type and machine_type != template.machine_type:
        return Shape(machine_type)
    accelerator = None
    if template.accelerator:
        kind, _, count = template.accelerator.rpartition(" x")
        accelerator = (kind, int(count))
    return Shape(template.machine_type, accelerator, max(template.max_replicas, 1), template.id)


def deployed_display_name(display_name: str, version_id: str) -> str:
    return f"{display_name} v{version_id}"[:128]


# ---- the function's canary ---------------------------------------------------------------------
_shared: dict[tuple[str, str, str | None], EndpointRegistry] = {}
_shared_lock = threading.Lock()


def endpoint_registry(settings: Settings) -> EndpointRegistry:
    """The process's endpoint client (one per project, region and emulator)."""
    key = (settings.project, settings.location, settings.vertex_emulator_host)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = make_endpoint_registry(settings)
        return _shared[key]


def canaries(
    settings: Settings,
    store: ObjectStore,
    bucket: str,
    *,
    registry: EndpointRegistry | None = None,
) -> Canaries:
    """The canary lifecycle with the process's endpoint client, the model's ledger in `bucket`."""
    return Canaries(
        endpoints=registry or endpoint_registry(settings),
        ledger=Ledger(store, settings.state_prefix),
        records=Records(store, settings.claim_lease_seconds),
        bucket=bucket,
        wait_seconds=float(settings.deploy_wait_seconds),
    )


def start_canary(
    settings: Settings,
    store: ObjectStore,
    *,
    bucket: str,
    model: str,
    version_id: str,
    display_name: str,
    serving_image: str,
    record: str | None = None,
    deadline: float | None = None,
    registry: EndpointRegistry | None = None,
    today: date | None = None,
) -> dict[str, Any] | None:
    """With `DEPLOY_ENDPOINT` set: deploy `model@version_id` on the model's own endpoint as its
    canary (handlers/registry/canary.py) and return the note for the upload's record; None when
    the setting is off. Call it only for a version that just became the default."""
    if not settings.deploy_endpoint:
        return None
    endpoint = endpoint_ref(settings.deploy_endpoint, model_id(model))
    version_name = f"{model}@{version_id}"
    note: dict[str, Any] = {
        "endpoint": endpoint,
        "version": version_name,
        "traffic_percent": settings.deploy_traffic,
    }
    try:
        image = check_serving_image(serving_image, today)
        if not image.ok:
            return {**note, "state": "skipped", "reason": image.message}
        lifecycle = canaries(settings, store, bucket, registry=registry)
        return lifecycle.start(
            model=model,
            version_id=version_id,
            display_name=display_name,
            traffic=settings.deploy_traffic,
            endpoint=endpoint,
            record=record,
            deadline=deadline,
            machine=shape_for,
        )
    except Exception as exc:  # noqa: BLE001 - the version is registered; the canary is optional
        _LOG.warning("canary deployment of %s not finished: %s", version_name, exc)
        if not isinstance(exc, (PermanentError, TransientError)):
            exc = TransientError(f"{type(exc).__name__}: {exc}", code="unexpected")
        busy = exc.code in ("in_progress_elsewhere", "gate_lease_expired", "endpoint_busy")
        return {
            **note,
            "state": "deferred" if busy else "failed",
            "error": {"code": exc.code, "message": str(exc)},
            "retry_with": f"registrar canary start {display_name}@{version_id}",
        }


def after_registration(
    version: RegisteredVersion,
    display_name: str,
    aliases: Collection[str],
    settings: Settings,
    store: ObjectStore,
    *,
    bucket: str,
    record: str | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """The pipeline's hook, after the gate: `{"deployment": note}` for the upload's record, or {}
    when `DEPLOY_ENDPOINT` is off. Only a version that became the default (`aliases`: what it
    holds after the gate) is deployed."""
    if not settings.deploy_endpoint:
        return {}
    if DEFAULT_ALIAS not in aliases:
        note: dict[str, Any] | None = {
            "endpoint": endpoint_ref(settings.deploy_endpoint, model_id(version.model)),
            "version": version.version_name,
            "state": "skipped",
            "reason": "the version did not become the default (promotion gate, or "
            "DEFAULT_VERSION_POLICY=keep); only a new default is deployed",
        }
    else:
        note = start_canary(
            settings,
            store,
            bucket=bucket,
            model=version.model,
            version_id=version.version_id,
            display_name=display_name,
            serving_image=settings.serving_image,
            record=record,
            deadline=deadline,
        )
    return {"deployment": note} if note else {}
