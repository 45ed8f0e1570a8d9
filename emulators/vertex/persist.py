"""What the model store and the endpoint store share: etags, long-running operations and atomic
state-file writes."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

from emulators.vertex.errors import not_found
from emulators.vertex.resources import now


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


@dataclass
class Operation:
    done: dict[str, Any]  # the finished google.longrunning.Operation
    polls_left: int  # GetOperation answers `done: false` this many more times


def start_operation(
    operations: dict[str, Operation],
    name: str,
    metadata_type: str,
    response: dict[str, Any],
    stamp: str,
    polls: int,
) -> dict[str, Any]:
    """Record the (already applied) operation `name`; answer it done unless `polls` > 0."""
    done = {
        "name": name,
        "metadata": {
            "@type": metadata_type,
            "genericMetadata": {"createTime": stamp, "updateTime": now()},
        },
        "done": True,
        "response": response,
    }
    operations[name] = Operation(done, polls)
    return done if polls == 0 else _pending(done)


def poll_operation(operations: dict[str, Operation], name: str) -> dict[str, Any]:
    """GetOperation: `done: false` while polls are left, then the finished operation."""
    op = operations.get(name)
    if op is None:
        raise not_found(f"Operation {name} not found.")
    if op.polls_left > 0:
        op.polls_left -= 1
        return _pending(op.done)
    return op.done


def load_operations(raw: dict[str, Any]) -> dict[str, Operation]:
    return {name: Operation(**op) for name, op in raw.items()}


def _pending(done: dict[str, Any]) -> dict[str, Any]:
    return {"name": done["name"], "metadata": done["metadata"]}
