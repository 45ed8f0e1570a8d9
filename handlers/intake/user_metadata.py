"""Custom metadata that steers registration, held to what the rest of the path can carry.

Each value an upload's metadata may set has one parser that turns any bad value into its
documented rejection, before anything is downloaded: `display_name` (handlers/intake/layout.py,
`bad_display_name`), `aliases` (handlers/registry/lineage.py, `bad_alias`), `metrics`
(handlers/intake/metrics.py: a rejection of the metrics only). This module is the one for
`description`, which is copied into the version's description: text that cannot be encoded as
UTF-8 (lone surrogates) or holds a NUL would fail the Vertex request after validation — as an
unexpected error the platform redelivers for 24 hours — so it is `bad_description` up front.
Metadata keys the registrar does not read are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import PermanentError

DESCRIPTION = "description"


def check(metadata: Mapping[str, str], uri: str) -> None:
    """Raise PermanentError(code="bad_description") for a description Vertex cannot take."""
    text = metadata.get(DESCRIPTION)
    if text is None:
        return
    problem = text_problem(text)
    if problem:
        raise PermanentError(
            f"{uri}: custom metadata {DESCRIPTION!r} {problem}. Fix the object's custom metadata "
            f"{DESCRIPTION!r} (plain text) and upload again.",
            code="bad_description",
        )


def text_problem(text: object) -> str | None:
    """Why `text` cannot travel as a JSON string to Vertex (None: it can)."""
    if not isinstance(text, str):
        return f"is a {type(text).__name__}, not text"
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (it contains a lone surrogate)"
    return None
