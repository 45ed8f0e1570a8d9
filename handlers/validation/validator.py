"""Safe validation of untrusted models: static scan -> sandboxed load -> smoke test -> export.

This module never imports TensorFlow or Keras; that happens only in the sandboxed worker process
(`handlers.validation.sandbox.worker`). Every failure is `Rejected` with a specific code and a
message in our words (`handlers.validation.sandbox.reasons`); what the loader itself said goes to
the function's log only.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from ..errors import Rejected
from ..logs import get_logger, log
from ..settings import Settings
from .report import TensorInfo, ValidationReport
from .sandbox import reasons
from .sandbox.process import Sandbox, default_memory_mb
from .sandbox.protocol import DETAIL_LIMIT
from .scan.keras import scan_keras_file
from .scan.savedmodel import parse_asset_names, scan_saved_model_dir

__all__ = ["TensorInfo", "ValidationReport", "Validator", "get_validator"]

EXPORT_DIRNAME = "saved_model"
_logger = get_logger(__name__)


class Validator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sandbox = Sandbox(
            memory_mb=settings.validation_memory_mb or default_memory_mb(),
            timeout_seconds=settings.validation_timeout_seconds,
            max_uses=settings.validator_max_uses,
            temp_dir=settings.temp_dir,
            required_layers=settings.sandbox_required_layers,
            keras_modules=settings.sandbox_keras_modules,
        )

    def prestart(self) -> None:
        """Start the worker now (non-blocking) so its TensorFlow import overlaps the download."""
        self.sandbox.start()

    def validate_keras(
        self, keras_file: Path, workdir: Path, *, consume: bool = False
    ) -> ValidationReport:
        """`consume=True`: the file is a throwaway copy; the worker deletes it once the weights
        are in memory, so it does not sit beside the export (temp files are RAM on Cloud
        Functions)."""
        scan = scan_keras_file(Path(keras_file), self.settings)
        export = Path(workdir) / EXPORT_DIRNAME
        if export.exists():
            shutil.rmtree(export)
        export.parent.mkdir(parents=True, exist_ok=True)
        answer = self._run(
            {
                "op": "keras",
                "path": str(Path(keras_file).resolve()),
                "export_dir": str(export),
                "release_source": consume,
            },
            what=f"the .keras file {Path(keras_file).name}",
        )
        # Re-check what we will register: the export, statically, in this process.
        static = scan_saved_model_dir(export, self.settings)
        notes = (f"keras {scan.keras_version}", *scan.notes, *static.notes)
        return self._report("keras", export, answer, static.inputs, static.outputs, notes)

    def validate_saved_model(self, saved_model_dir: Path, workdir: Path) -> ValidationReport:
        root = Path(saved_model_dir)
        static = scan_saved_model_dir(root, self.settings)
        answer = self._run(
            {"op": "saved_model", "dir": str(root.resolve())},
            what=f"the SavedModel {root.name}",
        )
        return self._report(
            "saved_model", root, answer, static.inputs, static.outputs, static.notes
        )

    def check_late_fingerprint(self, directory: Path) -> None:
        """A `fingerprint.pb` that arrived after its directory was registered, beside the
        registered `saved_model.pb` and `variables/variables.index`: Rejected when it is of
        another save (`savedmodel.fingerprint_mismatch`, `savedmodel.bad_fingerprint`)."""
        self._run(
            {"op": "fingerprint", "dir": str(Path(directory).resolve())},
            what="the late fingerprint.pb",
        )

    def asset_names(self, graph: bytes) -> frozenset[str] | None:
        """Only the asset names are parsed from the graph's bytes (scan/savedmodel.py)."""
        return parse_asset_names(graph)

    @property
    def sandbox_layers(self) -> dict[str, Any]:
        """The containment layers of the current (or last) worker; the same dict a report carries
        (`ValidationReport.sandbox_layers`), for records of uploads the sandbox rejected."""
        return self.sandbox.layers

    def close(self) -> None:
        """Stop the worker process (a new one starts on next use)."""
        self.sandbox.stop()

    def _run(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        answer = self.sandbox.request(payload, what=what)
        if answer.get("ok"):
            return answer
        # The record gets our words only; the loader's (which can quote the model) the log.
        detail = str(answer.get("message") or "")[:DETAIL_LIMIT]
        code, message = reasons.compose(
            answer.get("code"), what, answer.get("facts"), logged=bool(detail)
        )
        log(
            _logger,
            logging.WARNING,
            f"{what}: rejected in the sandbox ({code}); the loader said: {detail}",
            reason=code,
            loader_detail=detail,
        )
        raise Rejected(message, code=code)

    def _report(
        self,
        kind: Any,
        directory: Path,
        answer: dict[str, Any],
        inputs: tuple[TensorInfo, ...],
        outputs: tuple[TensorInfo, ...],
        notes: tuple[str, ...],
    ) -> ValidationReport:
        return ValidationReport(
            kind,
            directory,
            inputs,
            outputs,
            reasons.smoke_text(answer),
            tuple(notes),
            sandbox_layers=self.sandbox.layers,
            sample_non_finite=_declared(answer.get("sample_non_finite"), outputs),
        )


def _declared(names: Any, outputs: tuple[TensorInfo, ...]) -> tuple[str, ...]:
    """The worker's output names, kept only where they are outputs the static scan declared (the
    worker's answer is the model's to shape; the record takes names it already has)."""
    known = {t.name for t in outputs}
    if not isinstance(names, list):
        return ()
    return tuple(sorted({n for n in names if isinstance(n, str) and n in known}))


_shared: Validator | None = None
_shared_lock = threading.Lock()


def get_validator(settings: Settings) -> Validator:
    """The process-wide Validator (one sandbox worker shared by all requests)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.settings != settings:
            if _shared is not None:
                _shared.close()
            _shared = Validator(settings)
        return _shared
