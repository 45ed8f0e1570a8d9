"""The metrics found for an upload, as plain values: what intake reads (handlers/intake/metrics.py)
and the gate and evaluation import (handlers/registry/gated.py). A leaf, so that the registry never
imports intake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Metrics:
    values: dict[str, float]
    source: str  # gs:// URI of the object they came from (metrics.json, or the model object)
    generation: int  # that object's generation
    origin: Literal["file", "metadata"]

    @property
    def key(self) -> str:
        """Identity of these metrics: which object generation, read how."""
        return f"{self.origin}:{self.source}#{self.generation}"

    def record(self) -> dict[str, Any]:
        return {
            "state": "attached",
            "origin": self.origin,
            "source": self.source,
            "generation": self.generation,
            "values": dict(self.values),
        }


@dataclass(frozen=True)
class MetricsProblem:
    """Metrics found for an upload but not used: `rejected` (invalid) or `ignored` (stale)."""

    state: Literal["rejected", "ignored"]
    code: str
    message: str
    source: str
    generation: int
    origin: Literal["file", "metadata"]

    @property
    def key(self) -> str:
        return f"{self.origin}:{self.source}#{self.generation}"

    def record(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "origin": self.origin,
            "source": self.source,
            "generation": self.generation,
            "reason": {"code": self.code, "message": self.message},
        }


Found = Metrics | MetricsProblem | None
