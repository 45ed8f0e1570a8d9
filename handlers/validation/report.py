"""Result types of model validation (no TensorFlow here; `handlers.validation.validator` re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}:{self.dtype}[{dims}]"


@dataclass(frozen=True)
class ValidationReport:
    kind: Literal["keras", "saved_model"]
    saved_model_dir: Path  # the SavedModel to register: the input dir, or (for .keras) the export
    inputs: tuple[TensorInfo, ...]  # serving_default inputs
    outputs: tuple[TensorInfo, ...]
    smoke_test: str  # "passed" or "skipped: <why>"
    notes: tuple[str, ...] = ()
    # Containment layers of the worker that validated this upload, e.g. {"non_dumpable_parent":
    # true, "rlimits": true, "no_new_privs": true, "landlock": "abi 7", "caps_dropped": true,
    # "seccomp": true}; a layer the platform lacks is false, with why under "unavailable".
    sandbox_layers: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The `validation` section of the upload's record."""
        section = {
            "summary": self.summary(),
            "smoke_test": self.smoke_test,
            "notes": list(self.notes),
        }
        if self.sandbox_layers:
            section["sandbox_layers"] = dict(self.sandbox_layers)
        return section

    def signature(self) -> str:
        """The serving signature as a version's description names it, e.g.
        ``inputs x:float32[None, 4]; outputs y:float32[None, 1]``."""
        ins = ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.inputs)
        outs = ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.outputs)
        return f"inputs {ins}; outputs {outs}"

    def summary(self) -> str:
        """One short line for labels and logs, e.g. ``passed; in=x:float32[?,4]; out=y:...``."""
        ins = ",".join(t.describe() for t in self.inputs)
        outs = ",".join(t.describe() for t in self.outputs)
        return f"{self.smoke_test}; in={ins}; out={outs}"
