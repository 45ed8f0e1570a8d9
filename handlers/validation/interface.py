"""What the pipeline asks of a validator, independent of how it validates (the seam, as
handlers/registry/interface.py is the registry's).

`handlers.validation.validator.Validator` implements it with the static scan and the sandbox
worker (imported on the first model event: it pulls in the scanners); tests hand the pipeline
their own. Every member is required, so the pipeline never asks `hasattr`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .report import ValidationReport


class ModelValidator(Protocol):
    def prestart(self) -> None:
        """Start what validation needs (the sandbox worker) without waiting for it."""
        ...

    def validate_keras(
        self, keras_file: Path, workdir: Path, *, consume: bool = False
    ) -> ValidationReport:
        """Rejected unless the .keras file passes; the report names the SavedModel exported
        from it under `workdir` (what is registered)."""
        ...

    def validate_saved_model(self, saved_model_dir: Path, workdir: Path) -> ValidationReport:
        """Rejected unless the SavedModel directory passes."""
        ...

    def check_late_fingerprint(self, directory: Path) -> None:
        """Rejected unless a `fingerprint.pb` that arrived late belongs to the registered save."""
        ...

    def asset_names(self, graph: bytes) -> frozenset[str] | None:
        """The asset files a `saved_model.pb`'s bytes say the graph reads; None when they do not
        parse (validation then rejects the upload with the specific reason). Bounded: the
        function process parses untrusted bytes here."""
        ...

    @property
    def sandbox_layers(self) -> Mapping[str, Any]:
        """The containment layers of the current (or last) worker; empty before any."""
        ...
