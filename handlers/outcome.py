"""What one event came to: the `Outcome` the function logs and answers with.

A leaf (plain values, imports nothing of the house): the entry, the pipeline, every flow and the
CLI's backfill speak it. The record of a registration, which is built from every stage's result,
is `handlers/registration.py`, beside the pipeline that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    outcome: str  # ignored, malformed, waiting, superseded, duplicate, registered, rejected
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
