"""Evaluation-gated promotion: whether a new version takes `default`, and the alias moves.

`decide` is the rule, a pure function. `Gate` applies it to one version of one model: under the
model's lease in the promotion ledger (handlers/gcs/ledger.py) it reads the current default and
its value, decides, moves the aliases and remembers the decision.

The rule (PROMOTION_METRIC set; unset, nothing here runs and every version takes `default` as
before): a version takes `default` when
  1. it has a value for the metric, and
  2. that value meets PROMOTION_THRESHOLD, if set (>= when maximizing, <= when minimizing), and
  3. it beats the current default's value by at least PROMOTION_MIN_DELTA — strictly better, and
     better by >= the delta (ties keep the current default) — unless there is nothing to beat:
     no default, a default without a value for the metric, or a default that does not meet the
     threshold itself.
Otherwise it is *held*: registered without `default`, with the alias `challenger` (moved from the
version that held it). A version that already holds `default` (a model's first version always
does) keeps it: the gate never takes `default` away.

Why a lease and not just re-reading the default after moving it: MergeVersionAliases is
unconditional, so a decider that read the default, was delayed, and then moved it could
overwrite a better version's move after that version had already checked — and nobody would look
again. Under the lease each decision sees the alias moves of the one before it, so racing uploads
are decided one after another: the second compares itself with the first.

Idempotent: a decision is remembered per version and per metrics source (object + generation);
the same source decided again (a redelivered event, a retried run) replays the remembered
decision and moves nothing — a redelivered event never flips an alias back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..gcs.ledger import Held, Ledger
from ..gcs.records import now_iso
from ..settings import Settings
from .evaluation import value_of
from .interface import DEFAULT_ALIAS, ModelNotFound, ModelRegistry, ModelVersionInfo
from .lineage import label_value

T = TypeVar("T")
CHALLENGER_ALIAS = "challenger"
METRIC_LABEL = "gate-metric"  # the gate's metric name, as a label value
VALUE_LABEL = "gate-metric-value"  # its value at registration (encode_value), or "none"
PROMOTED, HELD, MANUAL = "promoted", "held", "manual"
NO_METRICS = "none"  # the `source` of a decision made without metrics


@dataclass(frozen=True)
class Rule:
    metric: str
    goal: str = "maximize"
    min_delta: float = 0.0
    threshold: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Rule | None:
        if not settings.promotion_metric:
            return None
        return cls(
            settings.promotion_metric,
            settings.promotion_goal,
            settings.promotion_min_delta,
            settings.promotion_threshold,
        )

    def meets_threshold(self, value: float) -> bool:
        if self.threshold is None:
            return True
        if self.goal == "maximize":
            return value >= self.threshold or math.isclose(value, self.threshold)
        return value <= self.threshold or math.isclose(value, self.threshold)

    def improvement(self, value: float, over: float) -> float:
        return value - over if self.goal == "maximize" else over - value

    def beats(self, value: float, over: float) -> bool:
        """Strictly better than `over`, and by at least min_delta (up to float rounding)."""
        gain = self.improvement(value, over)
        if gain <= 0 or math.isclose(value, over, rel_tol=1e-12, abs_tol=0.0):
            return False
        return gain >= self.min_delta or math.isclose(gain, self.min_delta, abs_tol=1e-12)

    def describe(self) -> str:
        parts = [self.goal, f"min delta {self.min_delta:g}"]
        if self.threshold is not None:
            parts.append(f"threshold {self.threshold:g}")
        return f"{self.metric} ({', '.join(parts)})"

    def settings_record(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "goal": self.goal,
            "min_delta": self.min_delta,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class Decision:
    decision: str  # promoted | held | manual
    reason: str
    metric: str
    value: float | None
    default_version: str | None  # the version holding `default` when the decision was made
    default_value: float | None

    def record(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "metric": self.metric,
            "value": self.value,
            "default_version": self.default_version,
            "default_value": self.default_value,
        }


def decide(
    rule: Rule,
    value: float | None,
    *,
    default_version: str | None,
    default_value: float | None,
    no_value: str = "",
) -> Decision:
    """The gate's rule (see the module docstring). `no_value` says why `value` is None."""
    m = rule.metric

    def result(decision: str, reason: str) -> Decision:
        return Decision(decision, reason, m, value, default_version, default_value)

    if value is None:
        return result(HELD, f"no value for {m!r}" + (f": {no_value}" if no_value else ""))
    if not rule.meets_threshold(value):
        side = "below" if rule.goal == "maximize" else "above"
        return result(HELD, f"{m}={value:g} is {side} PROMOTION_THRESHOLD={rule.threshold:g}")
    if default_version is None:
        return result(PROMOTED, f"{m}={value:g}; the model has no default version yet")
    if default_value is None:
        return result(
            PROMOTED, f"{m}={value:g}; the default version {default_version} has no {m} to beat"
        )
    if not rule.meets_threshold(default_value):
        return result(
            PROMOTED,
            f"{m}={value:g}; the default version {default_version} ({default_value:g}) does not "
            "meet PROMOTION_THRESHOLD itself",
        )
    if rule.beats(value, default_value):
        return result(
            PROMOTED,
            f"{m}={value:g} beats the default version {default_version}'s {default_value:g}"
            + (f" by at least {rule.min_delta:g}" if rule.min_delta else ""),
        )
    better = "higher" if rule.goal == "maximize" else "lower"
    need = f" by at least PROMOTION_MIN_DELTA={rule.min_delta:g}" if rule.min_delta else ""
    return result(
        HELD,
        f"{m}={value:g} does not beat the default version {default_version}'s "
        f"{default_value:g}{need} ({better} is better)",
    )


def encode_value(value: float | None) -> str:
    """A number as a Vertex label value ([a-z0-9_-], <= 63): 0.8 -> `0p8`, -1e-05 -> `-1e-05`."""
    if value is None:
        return "none"
    return repr(float(value)).lower().replace(".", "p").replace("+", "")


def decode_value(text: str | None) -> float | None:
    if not text or text == "none":
        return None
    try:
        return float(text.replace("p", "."))
    except ValueError:
        return None


def gate_labels(rule: Rule, value: float | None) -> dict[str, str]:
    """Labels every version registered under the gate carries (its own, so none is inherited from
    the model's labels, which Vertex merges into every version)."""
    return {METRIC_LABEL: label_value(rule.metric), VALUE_LABEL: encode_value(value)}


@dataclass(frozen=True)
class Candidate:
    model: str  # projects/P/locations/L/models/ID
    version_id: str
    value: float | None
    source: str  # the metrics' identity (Metrics.key), or NO_METRICS
    no_value: str = ""  # why value is None (no metrics, rejected metrics, metric missing)

    @property
    def version_name(self) -> str:
        return f"{self.model}@{self.version_id}"


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    aliases: tuple[str, ...]  # the version's aliases afterwards
    replayed: bool = False  # the same source was decided before: nothing moved

    def record(self) -> dict[str, Any]:
        out = self.decision.record()
        if self.replayed:
            out["replayed"] = True
        return out


class Gate:
    def __init__(
        self, rule: Rule, registry: ModelRegistry, ledger: Ledger, bucket: str, *, by: str = "gate"
    ) -> None:
        self.rule = rule
        self.registry = registry
        self.ledger = ledger
        self.bucket = bucket  # where the model's ledger lives (the uploads' bucket)
        self.by = by

    def run(self, candidate: Candidate, *, force: bool = False) -> GateResult:
        """Decide for `candidate` and move its aliases, once per metrics source (unless `force`)."""
        with self.ledger.held(self.bucket, candidate.model) as held:
            prior = held.versions.get(candidate.version_id)
            if (
                not force
                and prior
                and prior.get("metric") == self.rule.metric
                and _replays(str(prior.get("source", "")), candidate.source)
            ):
                me = self.registry.get_model(candidate.model, candidate.version_id)
                return GateResult(_from_entry(prior), me.aliases, replayed=True)
            decision, default = self._decide(held, candidate)
            aliases = self._move(held, candidate, decision, default)
            held.remember(candidate.version_id, self._entry(decision, candidate.source))
            return GateResult(decision, aliases)

    def preview(self, candidate: Candidate) -> Decision:
        """What `run` would decide now; reads only (no lease, nothing moved or remembered)."""
        doc = self.ledger.read(self.bucket, candidate.model)
        decision, _ = self._decide(_ReadOnly(doc), candidate)
        return decision

    def manual(self, model: str, version_id: str, move: Callable[[], T]) -> T:
        """An operator's `registrar promote` to `default`: `move()` runs under the lease, and the
        override is remembered as a `manual` decision (the version leaves `challenger`)."""
        with self.ledger.held(self.bucket, model) as held:
            held.check("moving default")
            before = self._default(model)
            result = move()
            me = self.registry.get_model(model, version_id)
            if CHALLENGER_ALIAS in me.aliases:
                self.registry.merge_version_aliases(me.version_name, remove=[CHALLENGER_ALIAS])
            value = self.value_of(held.doc, me)
            prior = held.versions.get(version_id) or {}
            decision = Decision(
                MANUAL,
                f"promoted by {self.by} (overriding the gate)",
                self.rule.metric,
                value,
                before.version_id if before else None,
                self.value_of(held.doc, before) if before else None,
            )
            held.remember(version_id, self._entry(decision, prior.get("source", NO_METRICS)))
            return result

    def value_of(self, doc: dict[str, Any], version: ModelVersionInfo) -> float | None:
        """A version's value of the metric: remembered in the ledger, else from its evaluations."""
        entry = (doc.get("versions") or {}).get(version.version_id)
        if entry and entry.get("metric") == self.rule.metric and entry.get("value") is not None:
            return float(entry["value"])
        return value_of(
            self.registry.list_model_evaluations(version.version_name), self.rule.metric
        )

    # ---- internals -----------------------------------------------------------------------
    def _decide(
        self, held: Held | _ReadOnly, candidate: Candidate
    ) -> tuple[Decision, ModelVersionInfo | None]:
        default = self._default(candidate.model)
        if default is not None and default.version_id == candidate.version_id:
            decision = decide(
                self.rule,
                candidate.value,
                default_version=None,
                default_value=None,
                no_value=candidate.no_value,
            )
            if decision.decision == HELD:
                reason = (
                    f"{decision.reason}; it keeps `default`, which it already holds: the gate "
                    "never takes `default` away"
                )
            else:
                reason = f"{self.rule.metric}={candidate.value:g}; it already holds `default`"
            return (
                Decision(decision.decision, reason, self.rule.metric, candidate.value, None, None),
                default,
            )
        default_value = self.value_of(held.doc, default) if default is not None else None
        decision = decide(
            self.rule,
            candidate.value,
            default_version=default.version_id if default else None,
            default_value=default_value,
            no_value=candidate.no_value,
        )
        return decision, default

    def _move(
        self,
        held: Held,
        candidate: Candidate,
        decision: Decision,
        default: ModelVersionInfo | None,
    ) -> tuple[str, ...]:
        me = self.registry.get_model(candidate.model, candidate.version_id)
        if DEFAULT_ALIAS in me.aliases:
            return me.aliases  # it keeps `default` whatever was decided
        if decision.decision == PROMOTED:
            held.check(f"moving `default` to {candidate.version_name}")
            remove = [CHALLENGER_ALIAS] if CHALLENGER_ALIAS in me.aliases else []
            moved = self.registry.merge_version_aliases(
                candidate.version_name, add=[DEFAULT_ALIAS], remove=remove
            )
            return moved.aliases
        if CHALLENGER_ALIAS in me.aliases:
            return me.aliases
        held.check(f"moving `{CHALLENGER_ALIAS}` to {candidate.version_name}")
        moved = self.registry.merge_version_aliases(candidate.version_name, add=[CHALLENGER_ALIAS])
        return moved.aliases

    def _default(self, model: str) -> ModelVersionInfo | None:
        try:
            return self.registry.get_model(model)
        except ModelNotFound:
            return None

    def _entry(self, decision: Decision, source: str) -> dict[str, Any]:
        return {
            **decision.record(),
            "source": source,
            "rule": self.rule.settings_record(),
            "at": now_iso(),
            "by": self.by,
        }


@dataclass
class _ReadOnly:
    doc: dict[str, Any]


def _from_entry(entry: dict[str, Any]) -> Decision:
    value = entry.get("value")
    default_value = entry.get("default_value")
    return Decision(
        str(entry.get("decision")),
        str(entry.get("reason", "")),
        str(entry.get("metric", "")),
        float(value) if value is not None else None,
        entry.get("default_version"),
        float(default_value) if default_value is not None else None,
    )


def _replays(remembered: str, source: str) -> bool:
    """The remembered decision stands for `source`: the same metrics, or newer ones of the same
    object (`…#generation`), so an older generation decided late never undoes a newer one."""
    if remembered == source:
        return True
    old_object, _, old_generation = remembered.rpartition("#")
    new_object, _, new_generation = source.rpartition("#")
    if not old_object or old_object != new_object:
        return False
    return (
        old_generation.isdigit()
        and new_generation.isdigit()
        and int(old_generation) > int(new_generation)
    )
