"""A small evaluator of the Cloud Logging query language, for the log-based metrics' filters.

Covers what monitoring.tf uses: AND / OR / NOT, parentheses, implicit AND, and comparisons
`field = "v"`, `field != "v"`, `field : "v"` (has: case-insensitive substring), `field:*` (present),
and `severity >= ERROR` (severities ordered as Logging orders them). Fields are dotted paths into a
LogEntry-shaped dict (`jsonPayload.outcome`, `resource.labels.service_name`, `logName`).
Not a full implementation: anything else raises, so a filter using more fails the test loudly.
"""

from __future__ import annotations

import re
from typing import Any

SEVERITIES = [
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
]

_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|!=|=|:|>|<)|(?P<paren>[()])'
    r"|(?P<word>[^\s()=!<>:\"]+))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot tokenise {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        raw = match.group(kind)
        if kind == "string":
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        tokens.append((kind, raw))
        position = match.end()
    return tokens


def _lookup(entry: dict[str, Any], path: str) -> Any:
    value: Any = entry
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _compare(entry: dict[str, Any], field: str, op: str, operand: str, quoted: bool) -> bool:
    actual = _lookup(entry, field)
    if op == ":" and operand == "*" and not quoted:
        return actual is not None
    if actual is None:
        return False
    if field == "severity" and not quoted:
        left, right = SEVERITIES.index(str(actual)), SEVERITIES.index(operand)
    else:
        left, right = str(actual), operand  # type: ignore[assignment]
    if op == ":":
        return str(operand).lower() in str(actual).lower()
    return {
        "=": left == right,
        "!=": left != right,
        ">=": left >= right,
        "<=": left <= right,
        ">": left > right,
        "<": left < right,
    }[op]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def parse(self) -> Any:
        tree = self.or_()
        if self.peek() is not None:
            raise ValueError(f"unexpected {self.peek()} at token {self.i}")
        return tree

    def or_(self) -> Any:
        terms = [self.and_()]
        while self.peek() == ("word", "OR"):
            self.take()
            terms.append(self.and_())
        return ("or", terms) if len(terms) > 1 else terms[0]

    def and_(self) -> Any:
        terms = [self.unary()]
        while (token := self.peek()) is not None and token not in (("word", "OR"), ("paren", ")")):
            if token == ("word", "AND"):
                self.take()
            terms.append(self.unary())  # implicit AND otherwise
        return ("and", terms) if len(terms) > 1 else terms[0]

    def unary(self) -> Any:
        token = self.take()
        if token == ("word", "NOT"):
            return ("not", self.unary())
        if token == ("paren", "("):
            tree = self.or_()
            if self.take() != ("paren", ")"):
                raise ValueError("missing )")
            return tree
        if token[0] != "word":
            raise ValueError(f"expected a field, got {token}")
        op = self.take()
        if op[0] != "op":
            raise ValueError(f"expected an operator after {token[1]}, got {op}")
        operand = self.take()
        if operand[0] not in ("string", "word"):
            raise ValueError(f"expected a value after {token[1]}{op[1]}, got {operand}")
        return ("cmp", token[1], op[1], operand[1], operand[0] == "string")


def _evaluate(tree: Any, entry: dict[str, Any]) -> bool:
    kind = tree[0]
    if kind == "or":
        return any(_evaluate(t, entry) for t in tree[1])
    if kind == "and":
        return all(_evaluate(t, entry) for t in tree[1])
    if kind == "not":
        return not _evaluate(tree[1], entry)
    _, field, op, operand, quoted = tree
    return _compare(entry, field, op, operand, quoted)


def matches(filter_text: str, entry: dict[str, Any]) -> bool:
    return _evaluate(_Parser(filter_text).parse(), entry)
