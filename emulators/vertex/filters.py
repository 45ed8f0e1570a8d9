"""The filter forms Vertex documents for ListModels / ListModelVersions, and nothing else.

Source: the `filter` field of `ListModelsRequest` / `ListModelVersionsRequest` (aiplatform_v1
`types/model_service.py`; the same text is on the REST reference pages):

- `model` and `display_name` (ListModels only) support `=` and `!=`;
- `labels` supports `labels.key=value` (equality) and `labels.key:*` / `labels:key` (existence);
- "A key including a space must be quoted": `labels."a key"`.

Terms may be joined with `AND`. Everything else is refused with 400 INVALID_ARGUMENT, because code
written against the emulator must only use forms Vertex is documented to accept:

- an unquoted label key containing anything but letters, digits and `_` (e.g.
  `labels.registrar-upload-key="x"`): the message suggests `labels."registrar-upload-key"="x"`;
- an unquoted value containing anything but letters, digits, `_` and `.` (quote it);
- `labels.key!=value` (`!=` is documented for `model` and `display_name` only), `OR`, `NOT`,
  parentheses, comparisons other than the above.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from emulators.vertex.errors import invalid

Record = Mapping[str, Any]  # {"model": id, "displayName": ..., "labels": {...}}
Predicate = Callable[[Record], bool]

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_TERM = re.compile(
    rf"""(?P<field>labels\.(?:{_QUOTED}|[^\s"=!:]+)|[A-Za-z_]+)\s*
        (?P<op>!=|=|:)\s*
        (?P<value>{_QUOTED}|[^\s"()]+)""",
    re.VERBOSE,
)
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an unquoted key: an AIP-160 identifier
_VALUE = re.compile(r"[A-Za-z0-9_.]+")  # an unquoted value
_FIELDS = {
    "display_name": "displayName",
    "displayName": "displayName",
    "model": "model",
}


def parse(expression: str | None, *, allowed: tuple[str, ...], labels: bool = True) -> Predicate:
    """Compile `expression`.

    `allowed` lists the plain fields this method filters on; `labels=False` refuses label terms
    (for resources without labels).
    """
    if not expression or not expression.strip():
        return lambda _record: True
    predicates = [_term(term, allowed, labels) for term in _split_and(expression)]
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


def _is_quoted(text: str) -> bool:
    return len(text) >= 2 and text[0] == text[-1] == '"'


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1]) if _is_quoted(text) else text


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value(raw: str, term: str) -> str:
    if _is_quoted(raw):
        return _unquote(raw)
    if not _VALUE.fullmatch(raw):
        raise invalid(
            f"Invalid filter term {term!r}: the unquoted value {raw!r} is not a documented form; "
            f"quote it: {_quote(raw)}."
        )
    return raw


def _label_key(raw: str, term: str, quoted_form: Callable[[str], str]) -> str:
    """`raw` follows `labels.` (or `labels:`): an identifier or a quoted key.

    `quoted_form(key)` rebuilds the term with the key quoted, for the error message.
    """
    if _is_quoted(raw):
        key = _unquote(raw)
        if not key:
            raise invalid(f"Invalid filter term {term!r}: empty label key.")
        return key
    if not _KEY.fullmatch(raw):
        raise invalid(
            f"Invalid filter term {term!r}: an unquoted label key may only hold letters, digits "
            f"and '_'. Quote the key: {quoted_form(_quote(raw))}"
        )
    return raw


def _term(term: str, allowed: tuple[str, ...], labels: bool) -> Predicate:
    match = _TERM.fullmatch(term)
    if not match:
        raise invalid(
            f'Invalid filter term {term!r}: expected e.g. display_name="x", '
            'labels.key="value", labels.key:* or labels:key.'
        )
    field, op, raw = match["field"], match["op"], match["value"]
    if (field == "labels" or field.startswith("labels.")) and not labels:
        raise invalid(f"Unsupported filter field 'labels' in {term!r}: this list has no labels.")
    if field == "labels":
        if op != ":":
            raise invalid(f'Invalid filter term {term!r}: use labels.KEY="value" or labels:KEY.')
        key = _label_key(raw, term, lambda quoted: f"labels:{quoted}")
        return lambda record: key in (record.get("labels") or {})
    if field.startswith("labels."):
        key = _label_key(field[len("labels.") :], term, lambda quoted: f"labels.{quoted}{op}{raw}")
        if op == ":":
            if raw != "*":
                raise invalid(f"Invalid filter term {term!r}: use labels.KEY:* for existence.")
            return lambda record: key in (record.get("labels") or {})
        if op == "!=":
            raise invalid(
                f'Invalid filter term {term!r}: labels support equality (labels.key="value") '
                "and existence (labels.key:* or labels:key) only; '!=' is documented for "
                "model and display_name."
            )
        value = _value(raw, term)
        return lambda record: (record.get("labels") or {}).get(key) == value
    name = _FIELDS.get(field)
    if name is None or field not in allowed:
        raise invalid(f"Unsupported filter field {field!r} in {term!r}.")
    value = _value(raw, term)
    if op == "=":
        return lambda record: record.get(name) == value
    if op == "!=":
        return lambda record: record.get(name) != value
    raise invalid(f"Invalid filter term {term!r}: {field} supports = and != only.")
