"""What the pipeline asks of a model registry, independent of any SDK: the contract and the
values it speaks in (as MLflow's entities live beside its store contract).

The pipeline, the gate, deploy and the CLI depend on `ModelRegistry` and these types;
`handlers.registry.vertex` implements it over the google-cloud-aiplatform GAPIC client (imported
lazily: it costs ~0.7 s). Nothing here imports an implementation: `vertex_types` (the Vertex
rules) and `vertex_errors` (the SDK's failures translated) import this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..errors import PermanentError
from .evaluation import EvaluationInfo, EvaluationSpec

# Label that carries an upload's identity; the dedupe lookup filters on it.
UPLOAD_KEY_LABEL = "registrar-upload-key"
DEFAULT_ALIAS = "default"  # the alias that marks a model's default version


class ModelNotFound(PermanentError):
    """The model, version or alias asked for does not exist (any registry)."""

    code = "not_found"


@dataclass(frozen=True)
class VersionRequest:
    display_name: str
    artifact_uri: str  # gs://bucket/dir/ (a directory holding saved_model.pb)
    serving_image: str
    description: str
    labels: dict[str, str]  # must include UPLOAD_KEY_LABEL
    aliases: tuple[str, ...] = ()
    make_default: bool = True


@dataclass(frozen=True)
class RegisteredVersion:
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    reused: bool = False  # an existing version with the same upload key was found and kept
    aliases: tuple[str, ...] = field(default=())

    @property
    def version_name(self) -> str:
        return f"{self.model}@{self.version_id}"


@dataclass(frozen=True)
class ModelVersionInfo:
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    display_name: str
    aliases: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    artifact_uri: str = ""
    description: str = ""
    create_time: datetime | None = None
    serving_image: str = ""  # containerSpec.imageUri

    @property
    def version_name(self) -> str:
        return f"{self.model}@{self.version_id}"

    @property
    def is_default(self) -> bool:
        return DEFAULT_ALIAS in self.aliases


class ModelRegistry(Protocol):
    def ensure_version(
        self, request: VersionRequest, *, deadline: float | None = None
    ) -> RegisteredVersion:
        """Make `request` a version of the model named `request.display_name`, exactly once.

        `deadline` (time.monotonic() seconds) bounds waiting on long-running operations."""
        ...

    def model_label(self, display_name: str, key: str) -> str | None:
        """Label `key` of the model named `display_name` (None: no such model, or no label)."""
        ...

    # ---- what gated promotion (handlers/registry/promotion.py) asks of the registry ----------
    def get_model(self, model: str, version: str | None = None) -> ModelVersionInfo:
        """`version` is a version id or an alias; None means the default version."""
        ...

    def merge_version_aliases(
        self, version_name: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> ModelVersionInfo:
        """Add (moving them from other versions) and remove aliases of `MODEL@VERSION`."""
        ...

    def list_model_evaluations(self, version_name: str) -> list[EvaluationInfo]:
        """The evaluations of `MODEL@VERSION`."""
        ...

    def ensure_evaluation(
        self, version_name: str, spec: EvaluationSpec
    ) -> tuple[EvaluationInfo, bool]:
        """Import `spec` into `MODEL@VERSION` once; (evaluation, reused)."""
        ...
