"""The subset of AIP-160 filters Vertex documents for ListModels / ListModelVersions.

Supported: `display_name` / `displayName` and `model` with `=` / `!=`; `labels.KEY=value`,
`labels."a key"=value`, `labels.KEY:*` and `labels:KEY`; terms joined by `AND`. Anything else
is refused with 400, as Vertex does for an expression it cannot parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from emulators.vertex.errors import invalid

Record = Mapping[str, Any]  # {"model": id, "displayName": ..., "labels": {...}}
Predicate = Callable[[Record], bool]

_TERM = re.compile(
    r"""(?P<field>labels\.(?:"[^"]+"|[A-Za-z0-9_-]+)|labels|[A-Za-z_]+)\s*
        (?P<op>!=|=|:)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|[^\s"()]+)""",
    re.VERBOSE,
)
_FIELDS = {
    "display_name": "displayName",
    "displayName": "displayName",
    "model": "model",
}


def parse(expression: str | None, *, allowed: tuple[str, ...]) -> Predicate:
    """Compile `expression`; `allowed` lists the plain fields this method filters on."""
    if not expression or not expression.strip():
        return lambda _record: True
    predicates = [_term(term, allowed) for term in _split_and(expression)]
    return lambda record: all(p(record) for p in predicates)


def _split_and(expression: str) -> list[str]:
    terms, current, quoted = [], "", False
    tokens = re.split(r'(")', expression)
    for token in tokens:
        if token == '"' and not current.endswith("\\"):
            quoted = not quoted
            current += token
            continue
        if quoted:
            current += token
            continue
        parts = re.split(r"\s+AND\s+", token)
        current += parts[0]
        for part in parts[1:]:
            terms.append(current)
            current = part
    if quoted:
        raise invalid(f"Invalid filter {expression!r}: unterminated quote.")
    terms.append(current)
    return [t.strip() for t in terms]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _term(term: str, allowed: tuple[str, ...]) -> Predicate:
    match = _TERM.fullmatch(term)
    if not match:
        raise invalid(f'Invalid filter term {term!r}: expected e.g. display_name="x".')
    field, op, raw = match["field"], match["op"], match["value"]
    value = _unquote(raw)
    if field == "labels":
        if op != ":":
            raise invalid(f"Invalid filter term {term!r}: use labels.KEY=value or labels:KEY.")
        return lambda record: value in (record.get("labels") or {})
    if field.startswith("labels."):
        key = _unquote(field[len("labels.") :])
        if op == ":":
            if raw != "*":
                raise invalid(f"Invalid filter term {term!r}: use labels.KEY:* for existence.")
            return lambda record: key in (record.get("labels") or {})
        if op == "=":
            return lambda record: (record.get("labels") or {}).get(key) == value
        return lambda record: (record.get("labels") or {}).get(key) != value
    name = _FIELDS.get(field)
    if name is None or field not in allowed:
        raise invalid(f"Unsupported filter field {field!r} in {term!r}.")
    if op == "=":
        return lambda record: record.get(name) == value
    if op == "!=":
        return lambda record: record.get(name) != value
    raise invalid(f"Invalid filter term {term!r}: {field} supports = and != only.")
