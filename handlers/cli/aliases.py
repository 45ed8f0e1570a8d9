"""`promote` and `rollback`: move a version alias, and remember where it was.

Vertex keeps only where an alias *is*. Where it *was* lives in one JSON object per model,
`{STATE_PREFIX}aliases/{model_id}.json`, in the bucket of the model's artifacts: per alias the
current `holder`, a `stack` of earlier holders (promote pushes, rollback pops) and the full
`history`. Uploads move `default` without telling us (DEFAULT_VERSION_POLICY=new), so before each
move the stack is reconciled with Vertex: versions created since the last recorded move are taken
to have held the alias in turn. Writes carry a generation precondition: concurrent operators
never lose each other's entries.
"""

from __future__ import annotations

import copy
import getpass
import json
import socket
from typing import Any

from ..errors import TransientError
from ..gcs.objects import ObjectStore, PreconditionFailed
from ..gcs.records import now_iso
from ..registry.interface import ModelNotFound, ModelVersionInfo
from ..registry.vertex import ALIAS_PATTERN, VertexRegistry
from ..settings import Settings
from .models import get_version, sorted_versions, split_uri
from .output import NOT_FOUND, USAGE, CliError

_MAX_HISTORY = 500


def history_uri(settings: Settings, bucket: str, model: str) -> str:
    return f"gs://{bucket}/{settings.state_prefix}aliases/{model.rsplit('/', 1)[-1]}.json"


def promote(
    registry: VertexRegistry,
    store: ObjectStore,
    settings: Settings,
    *,
    model: str,
    ref: str,
    alias: str,
    bucket: str | None,
) -> dict[str, Any]:
    _check_alias(alias)
    target = get_version(registry, model, ref)
    current = _holder(registry, model, alias)
    return _move(
        registry, store, settings, "promote", model, alias, current, target.version_id,
        _bucket(target, current, bucket),
    )  # fmt: skip


def rollback(
    registry: VertexRegistry,
    store: ObjectStore,
    settings: Settings,
    *,
    model: str,
    alias: str,
    bucket: str | None,
) -> dict[str, Any]:
    _check_alias(alias)
    current = _holder(registry, model, alias)
    if current is None:
        raise CliError(f"no version of {model} holds alias {alias!r}: nothing to roll back.", 3)
    where = _bucket(current, None, bucket)
    ids = [v.version_id for v in sorted_versions(registry, model)]
    state, _ = _load(store, history_uri(settings, where, model))
    entry = state.get("aliases", {}).get(alias) or _new_entry()
    target, how = rollback_target(entry, current.version_id, ids)
    if target is None:
        raise CliError(
            f"{model}@{current.version_id} holds {alias!r} and no earlier version exists: "
            "nothing to roll back to.",
            NOT_FOUND,
        )
    result = _move(registry, store, settings, "rollback", model, alias, current, target, where)
    result["chosen_by"] = how
    return result


def rollback_target(
    entry: dict[str, Any], current: str, version_ids: list[str]
) -> tuple[str | None, str]:
    """Where rollback sends the alias: the recorded previous holder, else the previous version."""
    probe = copy.deepcopy(entry)
    _reconcile(probe, current, version_ids)
    stack = [v for v in probe["stack"] if v in version_ids and v != current]
    if stack:
        return stack[-1], "recorded history"
    older = [v for v in version_ids if _num(v) < _num(current)]
    return (older[-1], "previous version (no recorded history)") if older else (None, "")


def record_move(
    entry: dict[str, Any], action: str, source: str | None, target: str, version_ids: list[str]
) -> None:
    """Update one alias's entry for a move from `source` (None: unheld) to `target`."""
    if source is not None:
        _reconcile(entry, source, version_ids)
    stack: list[str] = entry["stack"]
    if action == "promote" and source is not None:
        stack.append(source)
    elif action == "rollback" and target in stack:
        del stack[len(stack) - 1 - stack[::-1].index(target) :]
    entry["holder"] = target
    entry["latest_version"] = version_ids[-1] if version_ids else target
    entry["history"].append(
        {"at": now_iso(), "action": action, "from": source, "to": target, "by": actor()}
    )
    del entry["history"][:-_MAX_HISTORY]


def _reconcile(entry: dict[str, Any], current: str, version_ids: list[str]) -> None:
    """Account for moves made outside registrar since the last recorded one."""
    holder = entry.get("holder")
    if holder is None or holder == current:
        entry["holder"] = current
        return
    latest = _num(entry.get("latest_version") or holder)
    chain = [holder] + [v for v in version_ids if latest < _num(v) < _num(current)]
    entry["stack"].extend(chain)
    entry["history"].append(
        {"at": now_iso(), "action": "observed", "from": holder, "to": current,
         "by": "outside registrar (e.g. a new upload taking the alias)"}
    )  # fmt: skip
    entry["holder"] = current


def _move(
    registry: VertexRegistry,
    store: ObjectStore,
    settings: Settings,
    action: str,
    model: str,
    alias: str,
    current: ModelVersionInfo | None,
    target: str,
    bucket: str,
) -> dict[str, Any]:
    source = current.version_id if current else None
    uri = history_uri(settings, bucket, model)
    result = {"model": model, "alias": alias, "from": source, "to": target, "history": uri}
    if source == target:
        return {**result, "changed": False}
    registry.merge_version_aliases(f"{model}@{target}", add=[alias])
    ids = [v.version_id for v in sorted_versions(registry, model)]
    try:
        _save(
            store, uri, model, alias, lambda entry: record_move(entry, action, source, target, ids)
        )
    except (TransientError, PreconditionFailed) as exc:
        raise CliError(
            f"alias {alias!r} now points at {model}@{target}, but its history could not be written "
            f"to {uri} ({exc}); a later rollback may pick the previous version instead of "
            f"{source}.",
            4,
        ) from exc
    return {**result, "changed": True}


def _save(store: ObjectStore, uri: str, model: str, alias: str, change: Any) -> None:
    bucket, name = split_uri(uri)
    for _ in range(5):
        state, generation = _load(store, uri)
        state.setdefault("model", model)
        entry = state.setdefault("aliases", {}).setdefault(alias, _new_entry())
        change(entry)
        data = json.dumps(state, indent=2, sort_keys=True).encode()
        try:
            store.write_bytes(bucket, name, data, if_generation_match=generation)
            return
        except PreconditionFailed:
            continue  # someone else moved an alias meanwhile: apply ours on top of theirs
    raise PreconditionFailed(f"{uri} kept changing under five attempts")


def _load(store: ObjectStore, uri: str) -> tuple[dict[str, Any], int]:
    bucket, name = split_uri(uri)
    found = store.read_bytes(bucket, name)
    if found is None:
        return {}, 0
    try:
        state = json.loads(found[0])
    except json.JSONDecodeError:
        raise CliError(
            f"{uri} is not JSON; move it aside (it is the alias history) and retry.", 1
        ) from None
    return (state if isinstance(state, dict) else {}), found[1]


def _holder(registry: VertexRegistry, model: str, alias: str) -> ModelVersionInfo | None:
    try:
        return registry.get_model(model, alias)
    except ModelNotFound:
        return None


def _bucket(target: ModelVersionInfo, current: ModelVersionInfo | None, option: str | None) -> str:
    for version in (target, current):
        if version is not None and version.artifact_uri.startswith("gs://"):
            return split_uri(version.artifact_uri)[0]
    if option:
        return option
    raise CliError(
        "cannot tell which bucket holds the alias history: the versions have no gs:// "
        "artifact_uri. Pass --bucket BUCKET (or set REGISTRAR_BUCKET).",
        USAGE,
    )


def _check_alias(alias: str) -> None:
    if not ALIAS_PATTERN.fullmatch(alias):
        raise CliError(
            f"{alias!r} is not a version alias: 2-128 characters, starting with a lowercase "
            "letter, then letters, digits or hyphens, ending with a lowercase letter or digit.",
            USAGE,
        )


def _new_entry() -> dict[str, Any]:
    return {"holder": None, "latest_version": None, "stack": [], "history": []}


def _num(version_id: str) -> int:
    return int(version_id) if str(version_id).isdigit() else 0


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
