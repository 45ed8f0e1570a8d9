"""Safe validation of untrusted models: static scan -> sandboxed load -> smoke test -> export.

This module never imports TensorFlow or Keras; that happens only in the sandboxed worker process
(`handlers.validation.sandbox.worker`). Every failure is `Rejected` with a specific code.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from handlers.errors import Rejected
from handlers.settings import Settings
from handlers.validation.report import TensorInfo, ValidationReport
from handlers.validation.sandbox.process import Sandbox, default_memory_mb
from handlers.validation.scan.keras import scan_keras_file
from handlers.validation.scan.savedmodel import scan_saved_model_dir

__all__ = ["TensorInfo", "ValidationReport", "Validator", "get_validator"]

EXPORT_DIRNAME = "saved_model"


class Validator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sandbox = Sandbox(
            memory_mb=settings.validation_memory_mb or default_memory_mb(),
            timeout_seconds=settings.validation_timeout_seconds,
            max_uses=settings.validator_max_uses,
            temp_dir=settings.temp_dir,
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

    def close(self) -> None:
        """Stop the worker process (a new one starts on next use)."""
        self.sandbox.stop()

    def _run(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        answer = self.sandbox.request(payload, what=what)
        if answer.get("ok"):
            return answer
        code = str(answer.get("code") or "load_failed")
        detail = str(answer.get("message") or "")[:800]
        raise Rejected(
            _MESSAGES.get(code, _MESSAGES["load_failed"]).format(what, detail), code=code
        )

    @staticmethod
    def _report(
        kind: Any,
        directory: Path,
        answer: dict[str, Any],
        inputs: tuple[TensorInfo, ...],
        outputs: tuple[TensorInfo, ...],
        notes: tuple[str, ...],
    ) -> ValidationReport:
        smoke = str(answer.get("smoke", "skipped: no result"))
        return ValidationReport(kind, directory, inputs, outputs, smoke, tuple(notes))


_MESSAGES = {
    "load_failed": (
        "Loading {0} with safe settings failed: {1}. Expected a model that loads with "
        "keras.saving.load_model(path, safe_mode=True, compile=False) or tf.saved_model.load "
        "without custom code; re-save it with built-in layers only."
    ),
    "smoke.non_finite": (
        "A test prediction with {0} on all-zero inputs produced NaN or infinity ({1}). Check the "
        "weights (training diverged?) before uploading again."
    ),
    "smoke.bad_shape": (
        "A test prediction with {0} returned a different shape than its serving signature "
        "declares ({1}). Re-export with a signature that matches the outputs."
    ),
    "export.mismatch": (
        "The SavedModel exported from {0} does not reproduce the Keras model's outputs on the "
        "same input ({1}), so it would not serve the model that was uploaded. Re-save the model "
        "with built-in layers only, or upload a SavedModel instead."
    ),
    "savedmodel.not_servable": (
        "{0} loads with tf.saved_model.load but not the way TF Serving (Vertex's prebuilt "
        "TensorFlow containers) loads it: MetaGraph tagged 'serve', variables restored through "
        "its saver ({1}); every prediction would fail. A Keras 3 model saved with "
        "tf.saved_model.save(model) does this: export it with model.export(dir) instead, or "
        "upload the .keras file and let the registrar export it."
    ),
    "savedmodel.missing_serving_default": (
        "{0} has no usable 'serving_default' signature after loading ({1}). Export with "
        "tf.saved_model.save(model, dir, signatures={{'serving_default': f}})."
    ),
    "sandbox.out_of_memory": (
        "The sandboxed loader ran out of memory while loading {0} ({1}). Use a larger instance "
        "(VALIDATION_MEMORY_MB) or a smaller model."
    ),
}

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
