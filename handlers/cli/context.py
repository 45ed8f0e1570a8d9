"""What every `registrar` command is handed: settings, output, its arguments, and the store and
registry it talks to (each created on first use, so `--help` and bad arguments cost nothing).

A leaf of cli/: every command module imports it, it imports no command module.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ..gcs.objects import ObjectStore
from ..registry.vertex import VertexRegistry, make_registry
from ..settings import Settings
from .output import Output


@dataclass
class Context:
    settings: Settings
    out: Output
    args: argparse.Namespace
    _store: ObjectStore | None = field(default=None, repr=False)
    _registry: VertexRegistry | None = field(default=None, repr=False)

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = ObjectStore(self.settings)
        return self._store

    @property
    def registry(self) -> VertexRegistry:
        if self._registry is None:
            self._registry = make_registry(self.settings)
        return self._registry
