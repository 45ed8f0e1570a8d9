"""Vertex AI EndpointService input rules (400 INVALID_ARGUMENT unless noted), independent of state.

Sources: aiplatform_v1 `types/endpoint.py`, `types/endpoint_service.py`, `types/machine_resources.py`
field docs (the REST reference pages are generated from them), the "Configure compute resources
for prediction" page (machine types), and python-aiplatform issues where Vertex's answer is quoted
(#773: automatic resources on a custom model). Where Vertex's exact behaviour is not documented
the stricter reading is taken and the docstring says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emulators.vertex.errors import invalid
from emulators.vertex.rules import no_unknown

# Endpoint id (CreateEndpointRequest.endpoint_id): a letter then up to 62 of [a-z0-9-], not ending
# with '-'; or up to 9 digits without a leading zero (server-generated ids are longer).
ENDPOINT_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?|[1-9][0-9]{0,8}")
DEPLOYED_MODEL_ID = re.compile(r"[0-9]{1,10}")  # DeployedModel.id: "1-10 characters ... /[0-9]/"
DEFAULT_MACHINE_TYPE = "n1-standard-2"  # MachineSpec.machine_type: the DeployedModel default
NEW_MODEL_KEY = "0"  # DeployModelRequest.traffic_split: "0" is the model being deployed

# Machine types: E2 and N1 exactly as the prediction machine-type table lists them; the other
# series the page lists (N2, N2D, C2, C2D, C3, A2, A3, G2, TPU v5e...) by form only.
_EXACT_SERIES = {
    "e2": {"standard": (2, 4, 8, 16, 32), "highmem": (2, 4, 8, 16), "highcpu": (2, 4, 8, 16, 32)},
    "n1": {"standard": (2, 4, 8, 16, 32), "highmem": (2, 4, 8, 16, 32), "highcpu": (4, 8, 16, 32)},
}
_OTHER_SERIES = re.compile(
    r"(?:n2|n2d|c2|c2d|c3|c3d|a2|a3|g2|ct5lp|ct6e)-"
    r"(?:standard|highmem|highcpu|highgpu|megagpu|ultragpu|edgegpu|hightpu)-\d{1,3}[gt]?(?:-lssd)?"
)
ACCELERATOR_TYPES = {
    0: "ACCELERATOR_TYPE_UNSPECIFIED",
    1: "NVIDIA_TESLA_K80",
    2: "NVIDIA_TESLA_P100",
    3: "NVIDIA_TESLA_V100",
    4: "NVIDIA_TESLA_P4",
    5: "NVIDIA_TESLA_T4",
    6: "TPU_V2",
    7: "TPU_V3",
    8: "NVIDIA_TESLA_A100",
    9: "NVIDIA_A100_80GB",
    10: "TPU_V4_POD",
    11: "NVIDIA_L4",
    12: "TPU_V5_LITEPOD",
    13: "NVIDIA_H100_80GB",
    14: "NVIDIA_H100_MEGA_80GB",
    15: "NVIDIA_H200_141GB",
    16: "NVIDIA_B200",
    17: "NVIDIA_GB200",
    18: "NVIDIA_RTX_PRO_6000",
}

# JSON field names (aiplatform.v1 protos). Google's front end refuses unknown names with 400.
ENDPOINT_FIELDS = frozenset(
    """clientConnectionConfig createTime dedicatedEndpointDns dedicatedEndpointEnabled
    deployedModels description displayName enablePrivateServiceConnect encryptionSpec etag
    genAiAdvancedFeaturesConfig labels modelDeploymentMonitoringJob name network
    predictRequestResponseLoggingConfig privateModelServerEnabled privateServiceConnectConfig
    satisfiesPzi satisfiesPzs trafficSplit updateTime""".split()
)
ENDPOINT_OUTPUT_ONLY = frozenset(
    """name deployedModels etag createTime updateTime modelDeploymentMonitoringJob
    dedicatedEndpointDns satisfiesPzs satisfiesPzi""".split()
)
# UpdateEndpoint: fields an update mask may name; the others are immutable after creation.
ENDPOINT_UPDATABLE = frozenset(
    """displayName description labels trafficSplit predictRequestResponseLoggingConfig
    clientConnectionConfig""".split()
)
DEPLOYED_MODEL_FIELDS = frozenset(
    """automaticResources checkpointId createTime dedicatedResources disableContainerLogging
    disableExplanations displayName enableAccessLogging explanationSpec fasterDeploymentConfig id
    model modelVersionId privateEndpoints serviceAccount sharedResources speculativeDecodingSpec
    status systemLabels""".split()
)
DEPLOYED_MODEL_OUTPUT_ONLY = frozenset("modelVersionId createTime privateEndpoints status".split())
DEDICATED_FIELDS = frozenset(
    """autoscalingMetricSpecs machineSpec maxReplicaCount minReplicaCount requiredReplicaCount
    spot""".split()
)
MACHINE_SPEC_FIELDS = frozenset(
    """acceleratorCount acceleratorType gpuPartitionSize machineType reservationAffinity
    tpuTopology""".split()
)
AUTOMATIC_FIELDS = frozenset(["maxReplicaCount", "minReplicaCount"])
# MutateDeployedModelRequest.update_mask: the documented mutable paths (v1).
MUTABLE_DEPLOYED_PATHS = frozenset(
    """dedicatedResources.minReplicaCount dedicatedResources.maxReplicaCount
    dedicatedResources.requiredReplicaCount dedicatedResources.autoscalingMetricSpecs
    automaticResources.minReplicaCount automaticResources.maxReplicaCount
    disableContainerLogging""".split()
)


def check_endpoint_id(endpoint_id: str) -> None:
    if not ENDPOINT_ID.fullmatch(endpoint_id):
        raise invalid(
            f"Invalid endpoint_id {endpoint_id!r}: either a lowercase letter followed by up to 62 "
            "of [a-z0-9-] (not ending with '-'), or up to 9 digits without a leading zero."
        )


def check_private_networking(endpoint: Mapping[str, Any]) -> None:
    """`network` excludes `enable_private_service_connect` and `private_service_connect_config`."""
    if endpoint.get("network") and (
        endpoint.get("enablePrivateServiceConnect") or endpoint.get("privateServiceConnectConfig")
    ):
        raise invalid(
            "Only one of Endpoint.network or Endpoint.private_service_connect_config "
            "(enable_private_service_connect) can be set."
        )


def as_int(value: Any, what: str) -> int:
    """proto3 JSON int32: a number, or a string of digits (Google accepts both)."""
    if isinstance(value, bool):
        raise invalid(f"Invalid value for {what}: {value!r} is not an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise invalid(f"Invalid value for {what}: {value!r} is not an integer.")


def traffic_split(raw: Any, what: str) -> dict[str, int]:
    """A map of deployed-model id -> percent: ints 0-100 that add up to 100 (or an empty map)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise invalid(f"{what} must be a map from DeployedModel id to percentage.")
    split = {str(k): as_int(v, f"{what}[{k!r}]") for k, v in raw.items()}
    for key, value in split.items():
        if not 0 <= value <= 100:
            raise invalid(f"{what}[{key!r}] is {value}; percentages must be between 0 and 100.")
    if split and sum(split.values()) != 100:
        raise invalid(
            f"{what} percentages add up to {sum(split.values())}; they must add up to 100 "
            "(or the map must be empty for an endpoint that accepts no traffic)."
        )
    return split


def check_split_keys(split: Mapping[str, int], known: set[str]) -> None:
    missing = sorted(k for k in split if k not in known)
    if missing:
        raise invalid(f"The following DeployedModel ID(s) [{', '.join(missing)}] do not exist.")


def check_deployed_model_id(deployed_id: Any) -> str:
    if not isinstance(deployed_id, str) or not DEPLOYED_MODEL_ID.fullmatch(deployed_id):
        raise invalid(
            f"Invalid DeployedModel.id {deployed_id!r}: it must be 1-10 characters of [0-9]."
        )
    return deployed_id


def check_machine_type(machine_type: str) -> None:
    family, _, rest = machine_type.partition("-")
    kind, _, size = rest.partition("-")
    exact = _EXACT_SERIES.get(family)
    if exact is not None:
        ok = size.isdigit() and int(size) in exact.get(kind, ())
    else:
        ok = bool(_OTHER_SERIES.fullmatch(machine_type))
    if not ok:
        raise invalid(
            f"Machine type {machine_type!r} is not supported for prediction; see "
            "https://cloud.google.com/vertex-ai/docs/predictions/configure-compute "
            f"(e.g. {DEFAULT_MACHINE_TYPE!r}, 'e2-standard-4')."
        )


def machine_spec(raw: Any) -> dict[str, Any]:
    """MachineSpec for a DeployedModel: machine_type defaults to n1-standard-2 (proto docs)."""
    if not isinstance(raw, Mapping):
        raise invalid("DeployedModel.dedicated_resources.machine_spec is required.")
    no_unknown(raw, MACHINE_SPEC_FIELDS, "deployed_model.dedicated_resources.machine_spec")
    spec = dict(raw)
    spec["machineType"] = spec.get("machineType") or DEFAULT_MACHINE_TYPE
    check_machine_type(spec["machineType"])
    accelerator = spec.get("acceleratorType", 0)
    if isinstance(accelerator, int) and not isinstance(accelerator, bool):
        accelerator = ACCELERATOR_TYPES.get(accelerator, accelerator)
    if accelerator not in ACCELERATOR_TYPES.values():
        raise invalid(f"Invalid MachineSpec.accelerator_type {accelerator!r}.")
    count = as_int(spec.get("acceleratorCount", 0), "MachineSpec.accelerator_count")
    if count < 0:
        raise invalid("MachineSpec.accelerator_count must not be negative.")
    if (accelerator != "ACCELERATOR_TYPE_UNSPECIFIED") != (count > 0):
        raise invalid("MachineSpec.accelerator_type and accelerator_count must be set together.")
    spec.pop("acceleratorType", None)
    spec.pop("acceleratorCount", None)
    if count:
        spec.update(acceleratorType=accelerator, acceleratorCount=count)
    return spec


def replicas(raw: Mapping[str, Any], where: str, *, dedicated: bool) -> dict[str, int]:
    """min ≥ 1 (dedicated: required; automatic: default 1); max defaults to min and must be ≥ min."""
    low = as_int(raw.get("minReplicaCount", 0), f"{where}.min_replica_count")
    if low < 1 and (dedicated or "minReplicaCount" in raw):
        raise invalid(f"{where}.min_replica_count must be greater than or equal to 1.")
    low = max(low, 1)
    high = as_int(raw.get("maxReplicaCount", 0), f"{where}.max_replica_count") or low
    if high < low:
        raise invalid(
            f"{where}.max_replica_count ({high}) must not be smaller than min_replica_count "
            f"({low})."
        )
    out = {"minReplicaCount": low, "maxReplicaCount": high}
    if "requiredReplicaCount" in raw:
        required = as_int(raw["requiredReplicaCount"], f"{where}.required_replica_count")
        if required and not 1 <= required <= low:
            raise invalid(f"{where}.required_replica_count must be between 1 and {low}.")
        if required:
            out["requiredReplicaCount"] = required
    return out


def prediction_resources(deployed: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The DeployedModel's `prediction_resources` oneof, checked against what the model supports.

    Custom-container models (all this emulator registers) list only DEDICATED_RESOURCES, so
    automatic resources are refused as Vertex does (python-aiplatform#773). A missing oneof is
    refused too (the stricter reading: the docs say custom models "must" specify a machine type).
    """
    kinds = ("dedicatedResources", "automaticResources", "sharedResources")
    given = [k for k in kinds if k in deployed]
    if len(given) > 1:
        raise invalid("Only one of dedicated_resources, automatic_resources or shared_resources.")
    supported = model.get("supportedDeploymentResourcesTypes") or []
    if not supported:
        raise invalid(f"Model {model['name']} does not support deployment to an Endpoint.")
    if not given:
        raise invalid(
            "DeployedModel.prediction_resources is required: set dedicated_resources with a "
            f"machine_spec for Model {model['name']}."
        )
    kind = given[0]
    wanted = {
        "dedicatedResources": "DEDICATED_RESOURCES",
        "automaticResources": "AUTOMATIC_RESOURCES",
        "sharedResources": "SHARED_RESOURCES",
    }[kind]
    if wanted not in supported:
        snake = re.sub(r"([A-Z])", r"_\1", kind).lower()
        raise invalid(f"'{snake}' is not supported for Model {model['name']}.")
    raw = deployed[kind]
    if kind == "dedicatedResources":
        if not isinstance(raw, Mapping):
            raise invalid("DeployedModel.dedicated_resources must be an object.")
        no_unknown(raw, DEDICATED_FIELDS, "deployed_model.dedicated_resources")
        out = dict(raw)
        out["machineSpec"] = machine_spec(raw.get("machineSpec"))
        out.update(replicas(raw, "dedicated_resources", dedicated=True))
        return {kind: out}
    if kind == "automaticResources":
        if not isinstance(raw, Mapping):
            raise invalid("DeployedModel.automatic_resources must be an object.")
        no_unknown(raw, AUTOMATIC_FIELDS, "deployed_model.automatic_resources")
        return {kind: replicas(raw, "automatic_resources", dedicated=False)}
    return {kind: raw}  # shared_resources: a DeploymentResourcePool name (not emulated)
