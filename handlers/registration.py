"""The record of a registration: the one value a registered upload's record, log line and
notification are all built from, and the version request its lineage is made of.

It joins every stage's result (the upload, its name, the validation report, the published copy,
the registered version), so it lives beside the pipeline that writes the record: no stage and no
leaf imports another stage's types to hold it. Here the pipeline's values become the plain values
the registry takes (`lineage.Provenance`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gcs.publish import Published
from .intake.layout import ModelName
from .intake.uploads import Upload
from .outcome import Outcome
from .registry import lineage
from .registry.interface import RegisteredVersion, VersionRequest
from .settings import Settings
from .validation.report import ValidationReport


def version_request(
    *,
    upload: Upload,
    display_name: str,
    version_hint: str | None,
    aliases: tuple[str, ...],
    published: Published,
    validation: ValidationReport,
    settings: Settings,
) -> VersionRequest:
    """The version to register, its labels and description carrying the upload's lineage."""
    source = lineage.Provenance(
        upload_key=upload.upload_key,
        bucket=upload.bucket,
        uri=upload.uri,
        generation=upload.generation,
        kind=upload.kind,
        files=len(upload.members),
        metadata=upload.metadata,
        source_digest=published.source_digest,
        artifact_uri=published.artifact_uri,
        smoke_passed=validation.smoke_test == "passed",
        validation_summary=validation.summary(),
        signature=validation.signature(),
        warning=validation.non_finite_text(),
    )
    return lineage.version_request(
        source=source,
        display_name=display_name,
        version_hint=version_hint,
        aliases=aliases,
        settings=settings,
    )


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

    @property
    def aliases_now(self) -> tuple[str, ...]:
        """The aliases the version holds after the later stages (the gate may have moved them)."""
        if "aliases" in self.extra:
            return tuple(self.extra["aliases"])
        return self.version.aliases or self.aliases

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
