"""What the pipeline asks of a model registry, independent of any SDK.

The pipeline depends on `ModelRegistry`; `handlers.registry.vertex` implements it over the
google-cloud-aiplatform GAPIC client (imported lazily: it costs ~0.7 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Label that carries an upload's identity; the dedupe lookup filters on it.
UPLOAD_KEY_LABEL = "registrar-upload-key"


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


class ModelRegistry(Protocol):
    def ensure_version(
        self, request: VersionRequest, *, deadline: float | None = None
    ) -> RegisteredVersion:
        """Make `request` a version of the model named `request.display_name`, exactly once.

        `deadline` (time.monotonic() seconds) bounds waiting on long-running operations."""
        ...
