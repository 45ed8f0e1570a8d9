"""Structured JSON log lines that Cloud Logging understands (one object per line on stdout).

`severity` and `message` are Cloud Logging's special fields; `logging.googleapis.com/labels`
become log labels; everything passed as `fields=` lands in `jsonPayload` (e.g. `outcome`, which the
Terraform log-based metrics filter on).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

LOGGER_NAME = "registrar"
_configured = False


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": record.getMessage(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
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
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    labels = {"component": "gcs-model-registrar"}
    if "outcome" in fields:
        labels["outcome"] = str(fields["outcome"])
    logger.log(level, message, extra={"fields": fields, "labels": labels})
