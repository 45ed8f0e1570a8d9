"""What the model store and the endpoint store share: etags and atomic state-file writes."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any


def with_etag(resource: dict[str, Any]) -> dict[str, Any]:
    """Vertex-style etag over the resource's JSON (changes whenever the resource does)."""
    digest = hashlib.sha256(json.dumps(resource, sort_keys=True).encode()).hexdigest()
    resource["etag"] = "AMEw9y" + digest[:40]
    return resource


def write_state(path: str, data: dict[str, Any]) -> None:
    """Replace the state file atomically: a crash mid-write never leaves half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)
