"""The promotion gate from the command line: `registrar gate`, and the gate's part in `versions`
and `promote`.

The gate's memory is the promotion ledger (handlers/gcs/ledger.py), in the bucket of the model's
artifacts: per version the last decision (promoted / held / manual), the metric's value and why.
`gate` asks the same `Gate` the function uses (handlers/registry/promotion.py); `--dry-run` only
reads. `promote … --alias default` with the gate on runs under the gate's lease and is remembered
as a `manual` decision, in the ledger and in the version's upload record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ..gcs.ledger import Ledger
from ..gcs.objects import ObjectStore
from ..gcs.records import Records
from ..registry.interface import ModelNotFound, ModelVersionInfo
from ..registry.promotion import (
    CHALLENGER_ALIAS,
    METRIC_LABEL,
    VALUE_LABEL,
    Candidate,
    Decision,
    Gate,
    Rule,
    decode_value,
)
from ..registry.vertex import VertexRegistry
from ..settings import Settings
from .aliases import actor
from .context import Context
from .models import get_version, parse_ref, record_uri, resolve_model, sorted_versions, split_uri
from .output import NOT_FOUND, OK, USAGE, CliError

T = TypeVar("T")


def ledger_bucket(versions: list[ModelVersionInfo], option: str | None) -> str | None:
    for version in versions:
        if version.artifact_uri.startswith("gs://"):
            return split_uri(version.artifact_uri)[0]
    return option


def gate_rows(
    store: ObjectStore,
    settings: Settings,
    model: str,
    versions: list[ModelVersionInfo],
    bucket: str | None,
) -> dict[str, dict[str, Any]]:
    """Per version id: the gate metric's value and the last decision (empty: the gate never ran
    for this model and it is off)."""
    rule = Rule.from_settings(settings)
    where = ledger_bucket(versions, bucket)
    doc = Ledger(store, settings.state_prefix).read(where, model) if where else {}
    entries = doc.get("versions") or {}
    if rule is None and not entries:
        return {}
    rows: dict[str, dict[str, Any]] = {}
    for version in versions:
        entry = entries.get(version.version_id) or {}
        metric = entry.get("metric") or (rule.metric if rule else None)
        value = entry.get("value")
        if value is None and version.labels.get(METRIC_LABEL):
            value = decode_value(version.labels.get(VALUE_LABEL))
        rows[version.version_id] = {
            "metric": metric,
            "value": value,
            "decision": entry.get("decision"),
            "reason": entry.get("reason"),
            "by": entry.get("by"),
            "at": entry.get("at"),
        }
    return rows


def cell(row: dict[str, Any] | None) -> tuple[str, str]:
    """(`metric=value`, `decision`) for the versions table."""
    if not row:
        return "", ""
    value = "-" if row.get("value") is None else f"{row['value']:g}"
    return f"{row.get('metric')}={value}", row.get("decision") or ""


def promote_under_gate(ctx: Context, model: str, ref: str, move: Callable[[], T]) -> T:
    """`move` (the alias move to `default`) as a manual decision, when the gate is on."""

    rule = Rule.from_settings(ctx.settings)
    target = get_version(ctx.registry, model, ref)
    bucket = ledger_bucket([target], ctx.args.bucket)
    if rule is None or bucket is None:
        return move()
    ledger = Ledger(ctx.store, ctx.settings.state_prefix)
    gate = Gate(rule, ctx.registry, ledger, bucket, by=actor())
    result = gate.manual(model, target.version_id, move)
    entry = ledger.read(bucket, model).get("versions", {}).get(target.version_id)
    location = record_uri(target, ctx.settings)
    if entry and location:  # the version's upload record says so too
        record_bucket, name = split_uri(location)
        gate_section = {k: entry.get(k) for k in ("decision", "reason", "metric", "value",
                                                  "default_version", "default_value", "by", "at")}  # fmt: skip
        Records(ctx.store, ctx.settings.claim_lease_seconds).update(
            record_bucket,
            name,
            lambda record: {**record, "gate": gate_section},
            note=f"promoted to default by {entry.get('by')} (manual gate decision)",
        )
    return result


def gate(ctx: Context) -> int:
    """`registrar gate NAME[@VERSION] [--dry-run]`: what the gate decides for a version now."""

    rule = Rule.from_settings(ctx.settings)
    if rule is None:
        raise CliError(
            "PROMOTION_METRIC is not set, so there is no gate (every new version takes "
            "`default`). Set PROMOTION_METRIC (and PROMOTION_GOAL, PROMOTION_MIN_DELTA, "
            "PROMOTION_THRESHOLD) as the function has them.",
            USAGE,
        )
    ref = parse_ref(ctx.args.name)
    registry: VertexRegistry = ctx.registry
    model = resolve_model(registry, ref.name)
    versions = sorted_versions(registry, model)
    candidate_version = _candidate_version(registry, model, ref.ref, versions)
    bucket = ledger_bucket(versions, ctx.args.bucket)
    if bucket is None:
        raise CliError(
            "cannot tell which bucket holds the promotion ledger: the versions have no gs:// "
            "artifact_uri. Pass --bucket BUCKET (or set REGISTRAR_BUCKET).",
            USAGE,
        )
    ledger = Ledger(ctx.store, ctx.settings.state_prefix)
    doc = ledger.read(bucket, model)
    engine = Gate(rule, registry, ledger, bucket, by=actor())
    value = engine.value_of(doc, candidate_version)
    entry = (doc.get("versions") or {}).get(candidate_version.version_id) or {}
    candidate = Candidate(
        model,
        candidate_version.version_id,
        value,
        str(entry.get("source") or "registrar gate"),
        ""
        if value is not None
        else f"version {candidate_version.version_id} has no evaluation with {rule.metric!r}",
    )
    if ctx.args.dry_run:
        decision, aliases, changed = engine.preview(candidate), candidate_version.aliases, False
    else:
        before = set(candidate_version.aliases)
        result = engine.run(candidate, force=True)
        decision, aliases, changed = result.decision, result.aliases, set(result.aliases) != before
    return _report(ctx, model, rule, candidate_version, decision, aliases, changed)


def _candidate_version(
    registry: VertexRegistry, model: str, ref: str | None, versions: list[ModelVersionInfo]
) -> ModelVersionInfo:
    """The version named, else the challenger, else the newest version without `default`."""
    if ref:
        return get_version(registry, model, ref)
    try:
        return registry.get_model(model, CHALLENGER_ALIAS)
    except ModelNotFound:
        pass
    others = [v for v in versions if not v.is_default]
    if not others:
        raise CliError(
            f"nothing to decide: {model} has no version besides its default. Name one with "
            "NAME@VERSION.",
            NOT_FOUND,
        )
    return others[-1]


def _report(
    ctx: Context,
    model: str,
    rule: Rule,
    version: ModelVersionInfo,
    decision: Decision,
    aliases: tuple[str, ...],
    changed: bool,
) -> int:
    dry = bool(ctx.args.dry_run)
    payload = {
        "model": model,
        "version_id": version.version_id,
        "rule": rule.settings_record(),
        "dry_run": dry,
        "decision": decision.record(),
        "aliases": list(aliases),
        "changed": changed,
    }
    if ctx.out.json_mode:
        ctx.out.data(payload)
        return OK
    verb = {
        "promoted": "takes `default`",
        "held": "stays out of `default`, as `challenger`",
    }.get(decision.decision, decision.decision)
    title = f"gate for {model}@{version.version_id}" + (" (dry run: nothing moved)" if dry else "")
    ctx.out.fields(
        title,
        [
            ("rule", rule.describe()),
            ("version", version.version_id),
            ("value", decision.value),
            ("default version", decision.default_version or version.version_id),
            ("default value", decision.default_value),
            ("decision", f"{decision.decision}: {verb}"),
            ("reason", decision.reason),
            ("aliases", list(aliases)),
        ],
    )
    if not dry:
        ctx.out.say("aliases moved." if changed else "nothing moved.")
    return OK
