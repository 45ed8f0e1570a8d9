"""Structured JSON log lines that Cloud Logging understands (one object per line on stdout).

`severity` and `message` are Cloud Logging's special fields; `logging.googleapis.com/labels`
become log labels and `logging.googleapis.com/sourceLocation` the entry's source location;
everything passed as `extra={"json_fields": {...}}` (google-cloud-logging's structured-handler
convention; `log()` does it for you) lands in `jsonPayload` (e.g. `outcome`, which the Terraform
log-based metrics filter on).

One hierarchy: the package's own name is the root logger of the product, so every module logs
with `get_logger(__name__)` (or plain `logging.getLogger(__name__)`) and reaches the one JSON
handler that `configure()` installs. Shared by design (function and CLI).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

LOGGER_NAME = __name__.rpartition(".")[0] or "handlers"  # the package: "handlers"
_configured = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "json_fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        entry["logging.googleapis.com/sourceLocation"] = {
            "file": record.pathname,
            "line": str(record.lineno),
            "function": record.funcName,
        }
        labels = getattr(record, "labels", None)
        if isinstance(labels, dict):
            entry["logging.googleapis.com/labels"] = {k: str(v) for k, v in labels.items()}
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: str = "INFO") -> logging.Logger:
    """Install the JSON handler once per process; later calls only change the level."""
    global _configured
    logger = logging.getLogger(LOGGER_NAME)
    if not _configured:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
        # Libraries' warnings and functions-framework's "Exception on / [POST]" traceback: one
        # JSON entry each too, instead of one Cloud Logging entry per line of plain text.
        root = logging.getLogger()
        if not root.handlers:
            root.addHandler(handler)
        _configured = True
    logger.setLevel(level)
    return logger


def get_logger(name: str = "") -> logging.Logger:
    """`get_logger(__name__)` in a module of the package; a bare word is taken as a child."""
    if not name or name == LOGGER_NAME:
        return logging.getLogger(LOGGER_NAME)
    if name.startswith(LOGGER_NAME + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{LOGGER_NAME}.{name}")


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    labels = {"component": "gcs-model-registrar"}
    if "outcome" in fields:
        labels["outcome"] = str(fields["outcome"])
    logger.log(level, message, extra={"json_fields": fields, "labels": labels}, stacklevel=2)


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Seconds the block took, as `timings[stage]` (the `timings` field of a summary line)."""
    begun = time.monotonic()
    try:
        yield
    finally:
        timings[stage] = round(time.monotonic() - begun, 4)
