"""What one event came to: the `Outcome` the function logs and answers with, and `Registration`,
the one value a successful upload's record, log line and notification are all built from.

Shared by design: the function and the CLI's backfill both run the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: nothing heavy at `import main`
    from .gcs.publish import Published
    from .intake.layout import ModelName
    from .intake.uploads import Upload
    from .registry.interface import RegisteredVersion
    from .validation.report import ValidationReport


@dataclass
class Outcome:
    outcome: str  # ignored, malformed, waiting, superseded, duplicate, registered, rejected
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registration:
    """A registered upload; `extra` holds what later stages add (gate decision, deployment)."""

    upload: Upload
    name: ModelName
    version: RegisteredVersion
    published: Published
    report: ValidationReport
    aliases: tuple[str, ...]
    timings: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The final record (also the Pub/Sub notification's body)."""
        return {
            "state": "registered",
            "display_name": self.name.display_name,
            "model": self.version.model,
            "version_id": self.version.version_id,
            "version_name": self.version.version_name,
            "reused_existing_version": self.version.reused,
            "artifact_uri": self.published.artifact_uri,
            "digest": f"sha256:{self.published.source_digest}",
            "artifact_files": self.published.manifest,
            "validation": self.report.record(),
            "aliases": list(self.version.aliases or self.aliases),
            **self.extra,
            "timings": self.timings,
        }

    def log_fields(self) -> dict[str, Any]:
        """The log line's fields: the record's identity without the bulky file list."""
        record = self.record()
        keep = ("display_name", "model", "version_id", "artifact_uri", "reused_existing_version")
        return {
            **{k: record[k] for k in keep},
            "source_uri": self.upload.uri,
            "generation": self.upload.generation,
            **{k: v for k, v in self.extra.items() if k in ("gate", "deployment")},
            "timings": self.timings,
        }

    def message(self) -> str:
        return (
            f"registered {self.upload.uri} as {self.name.display_name!r} "
            f"version {self.version.version_id}"
        )

    def outcome(self) -> Outcome:
        return Outcome("registered", self.message(), self.log_fields())
