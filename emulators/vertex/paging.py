"""List paging (`pageSize`, opaque `pageToken`) and `orderBy`, as Google list methods do them."""

from __future__ import annotations

import base64
import json
from typing import Any

from emulators.vertex.errors import invalid
from emulators.vertex.resources import camel_keys


def encode_token(offset: int, query: str) -> str:
    raw = json.dumps({"o": offset, "q": query}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, query: str) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = int(data["o"])
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page_token {token!r}.") from None
    if data.get("q") != query or offset < 0:
        raise invalid("The page_token does not belong to this query (filter or order changed).")
    return offset


def page_size(raw: str | None) -> int:
    try:
        size = int(raw or 0)
    except ValueError:
        raise invalid(f"Invalid page_size {raw!r}.") from None
    if size < 0:
        raise invalid("page_size must not be negative.")
    return min(size or 100, 1000)


def page(
    items: list[dict[str, Any]],
    key: str,
    query: dict[str, str | None],
    orderable: tuple[str, ...],
) -> dict[str, Any]:
    items = order(items, query.get("orderBy"), orderable)
    cache_key = f"{query.get('filter') or ''}|{query.get('orderBy') or ''}"
    start = decode_token(query.get("pageToken"), cache_key)
    size = page_size(query.get("pageSize"))
    out: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        out["nextPageToken"] = encode_token(start + size, cache_key)
    return out


def order(
    items: list[dict[str, Any]], order_by: str | None, orderable: tuple[str, ...]
) -> list[dict[str, Any]]:
    if not order_by:
        return items
    keys: list[tuple[str, bool]] = []
    for part in order_by.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise invalid(f"Invalid order_by {order_by!r}.")
        name = camel_keys({words[0]: None}).popitem()[0]
        if name not in orderable:
            raise invalid(f"order_by field {words[0]!r} is not supported here.")
        keys.append((name, len(words) == 2 and words[1] == "desc"))
    for name, desc in reversed(keys):  # stable sorts, least significant key first
        items = sorted(items, key=lambda item, n=name: item.get(n) or "", reverse=desc)
    return items
