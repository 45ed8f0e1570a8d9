"""Tables and lines for the `registrar` commands (kept apart so commands stay about the work)."""

from __future__ import annotations

from typing import Any

from . import backfill as backfill_lib
from .output import OK, Output


def moved(out: Output, result: dict[str, Any]) -> int:
    if out.json_mode:
        out.data(result)
    elif not result["changed"]:
        out.say(f"{result['model']}@{result['to']} already holds alias {result['alias']!r}.")
    else:
        how = f" ({result['chosen_by']})" if result.get("chosen_by") else ""
        out.say(
            f"alias {result['alias']!r} of {result['model']}: version {result['from'] or '-'} -> "
            f"{result['to']}{how}. History: {result['history']}"
        )
    return OK


def short_name(version_name: str | None) -> str:
    return version_name.rsplit("/", 1)[-1] if version_name else ""


def version_of(model: str, version_id: str) -> str:
    return f"{model.rsplit('/', 1)[-1]}@{version_id}" if model and version_id else ""


def details(result: backfill_lib.Result) -> str:
    return f"{result.reason}: {result.message}" if result.reason else result.message


def short(summary: dict[str, Any]) -> str:
    digest = summary.get("digest_prefix") or ""
    return digest[: len("sha256:") + 16] + "…" if digest else ""


def version_fields(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = ("display_name", "version_id", "aliases", "created", "source_uri",
            "source_generation", "artifact_uri", "digest_prefix", "labels", "description")  # fmt: skip
    return [(k, summary.get(k)) for k in keys]


def record_fields(record: dict[str, Any]) -> list[tuple[str, Any]]:
    validation = record.get("validation") or {}
    reason = record.get("reason")
    return [
        ("state", record.get("state")),
        ("source", record.get("source")),
        ("upload key", record.get("upload_key")),
        ("digest", record.get("digest")),
        ("artifact", record.get("artifact_uri")),
        ("validation", validation.get("summary") if isinstance(validation, dict) else validation),
        ("reason", reason),
        ("attempts", record.get("attempts")),
        ("created", record.get("created")),
        ("updated", record.get("updated")),
    ]
