"""UploadModel's `containerSpec` rules, as Vertex documents them (400 INVALID_ARGUMENT).

Sources (emulators/vertex/README.md, "Serving containers"):
- aiplatform_v1 `types/model.py` ModelContainerSpec: `image_uri` "Required … must identify an
  image in Artifact Registry or Container Registry" (or a Vertex prebuilt image); `ports`: "Vertex
  AI does not use ports other than the first one listed" (the stricter reading: at most one
  port), each "between 1 and 65535" (`Port.container_port`); `predict_route` / `health_route`
  are HTTP paths ("if you set this field to /foo") - a path starts with `/`.
- `types/env_var.py` EnvVar: name "Required … Must be a valid C identifier", value required.
- Vertex "Pre-built containers for prediction" page: the TensorFlow images' end of availability
  (`PREBUILT_EOL`); "only the :latest tag is supported". After that date Vertex no longer serves
  the image: the emulator refuses to register a version naming it. Which day it is comes from
  the emulator's `today` (admin `POST /_emulator/config {"today": "2027-01-15"}`, or
  `--today`), so tests are deterministic; unset, the real UTC date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from emulators.vertex.errors import failed_precondition, invalid

PREBUILT = re.compile(
    r"(?:[a-z]+-docker\.pkg\.dev/vertex-ai|(?:[a-z]+\.)?gcr\.io/cloud-aiplatform)/prediction/"
    r"tf2?-(?:cpu|gpu)\.(?P<version>\d+-\d+)(?::(?P<tag>[\w.-]+))?"
)
PREBUILT_EOL = {
    "2-12": date(2025, 6, 30),
    "2-13": date(2025, 11, 28),
    "2-14": date(2027, 1, 14),
    "2-15": date(2027, 1, 14),
}
# Artifact Registry (`LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE…`) or Container Registry
# (`[REGION.]gcr.io/PROJECT/IMAGE…`), with a tag or a digest or neither.
_REGISTRY = re.compile(
    r"(?:[a-z0-9-]+-docker\.pkg\.dev/[a-z0-9-]+(?::[a-z0-9-]+)?/[a-z0-9._-]+"
    r"|(?:(?:us|eu|asia)\.)?gcr\.io/[a-z0-9:.-]+)"
    r"(?:/[a-z0-9._-]+)+(?::[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?"
)
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPEC_FIELDS = frozenset(
    """imageUri command args env ports predictRoute healthRoute grpcPorts deploymentTimeout
    sharedMemorySizeMb startupProbe healthProbe livenessProbe""".split()
)


def check(spec: Mapping[str, Any], today: date) -> None:
    """Raise the ApiError Vertex answers for this containerSpec, if any."""
    image = spec.get("imageUri")
    if not isinstance(image, str) or not image:
        raise invalid("Model.container_spec.image_uri is required.")
    unknown = sorted(set(spec) - _SPEC_FIELDS)
    if unknown:
        raise invalid(f"Unknown field(s) in Model.container_spec: {', '.join(unknown)}.")
    prebuilt = PREBUILT.fullmatch(image)
    if prebuilt:
        _check_prebuilt(image, prebuilt["version"], prebuilt["tag"], today)
    elif not _REGISTRY.fullmatch(image):
        raise invalid(
            f"Model.container_spec.image_uri {image!r} must identify an image in Artifact "
            "Registry (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE) or Container Registry "
            "(gcr.io/PROJECT/IMAGE). To serve a public image, proxy it through an Artifact "
            "Registry remote repository or copy it there."
        )
    for key in ("command", "args"):
        values = spec.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid(f"Model.container_spec.{key} must be a list of strings.")
    _check_ports(spec.get("ports"))
    for key, field in (("predictRoute", "predict_route"), ("healthRoute", "health_route")):
        route = spec.get(key)
        if route in (None, ""):
            continue
        if (
            not isinstance(route, str)
            or not route.startswith("/")
            or any(c.isspace() for c in route)
        ):
            raise invalid(
                f"Model.container_spec.{field} {route!r} must be an HTTP path starting with '/'."
            )
    _check_env(spec.get("env"))


def _check_prebuilt(image: str, version: str, tag: str | None, today: date) -> None:
    eol = PREBUILT_EOL.get(version)
    if eol is not None and today > eol:
        raise failed_precondition(
            f"The container image {image} reached its end of availability on "
            f"{eol.isoformat()} and can no longer be used. Use a supported pre-built container "
            "or a custom container."
        )
    if tag is not None and tag != "latest":
        raise invalid(f"Pre-built container image {image}: only the :latest tag is supported.")


def _check_ports(ports: Any) -> None:
    if ports in (None, []):
        return
    if not isinstance(ports, list):
        raise invalid("Model.container_spec.ports must be a list.")
    if len(ports) > 1:
        raise invalid(
            "Model.container_spec.ports lists more than one port; Vertex AI uses only the "
            "first (list exactly one)."
        )
    for port in ports:
        number = port.get("containerPort") if isinstance(port, Mapping) else None
        if number is None and isinstance(port, Mapping):
            number = port.get("container_port")
        try:
            value = int(number)  # REST sends int32 as a number, proto-json may quote it
        except (TypeError, ValueError):
            raise invalid("Model.container_spec.ports[].container_port is required.") from None
        if not 1 <= value <= 65535:
            raise invalid(
                f"Model.container_spec.ports[].container_port {value} must be between 1 and 65535."
            )


def _check_env(env: Any) -> None:
    if env in (None, []):
        return
    if not isinstance(env, list):
        raise invalid("Model.container_spec.env must be a list.")
    for item in env:
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not _C_IDENTIFIER.fullmatch(name):
            raise invalid(f"Model.container_spec.env name {name!r} must be a valid C identifier.")
