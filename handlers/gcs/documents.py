"""Small JSON documents read and written with their generation: the upload records and the gate's
ledger. Every write carries an `ifGenerationMatch` precondition (0: create only), so of two writers
that read the same generation exactly one wins; the other gets `PreconditionFailed` and reads again.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ..logs import get_logger
from .objects import ObjectStore

_LOG = get_logger(__name__)


def read_document(
    store: ObjectStore, bucket: str, name: str, *, corrupt: dict[str, Any]
) -> tuple[dict[str, Any], int] | None:
    """The document at gs://bucket/name and its generation; None when there is none. One that is
    not a JSON object reads as (a copy of) `corrupt`, to be taken over and rewritten."""
    found = store.read_bytes(bucket, name)
    if found is None:
        return None
    data, generation = found
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        _LOG.warning("gs://%s/%s is not a JSON object; it is rewritten afresh", bucket, name)
        return copy.deepcopy(corrupt), generation
    return value, generation


def write_document(
    store: ObjectStore, bucket: str, name: str, doc: dict[str, Any], *, if_generation_match: int
) -> int:
    """Write `doc` (indented, keys sorted: people read these) over exactly that generation (0:
    create); returns the new generation. Raises `PreconditionFailed` when another writer won."""
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    return store.write_bytes(bucket, name, data, if_generation_match=if_generation_match)
