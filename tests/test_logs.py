"""One logger hierarchy: every module's INFO line reaches the JSON handler, in Cloud Logging's shape."""

from __future__ import annotations

import importlib
import io
import json
import logging
import pkgutil
import re
from pathlib import Path

import pytest

import handlers
from handlers import logs

ROOT = Path(__file__).resolve().parents[1]
# Worker-side modules import TensorFlow at import time; they log through the worker's stderr.
WORKER_ONLY = (
    "handlers.validation.sandbox.worker",
    "handlers.validation.sandbox.tf_ops",
    "handlers.validation.sandbox.checks",
    "handlers.validation.sandbox.keras_load",
)


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(handlers.__path__, "handlers.")]
    return [n for n in names if not n.startswith(WORKER_ONLY)]


@pytest.fixture
def captured() -> io.StringIO:
    logs.configure("INFO")
    logger = logging.getLogger(logs.LOGGER_NAME)
    (handler,) = [h for h in logger.handlers if isinstance(h.formatter, logs.JsonFormatter)]
    stream = io.StringIO()
    saved = handler.setStream(stream)
    yield stream
    handler.setStream(saved)


def test_every_module_level_logger_reaches_the_json_handler(captured: io.StringIO) -> None:
    loggers = {}
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, logging.Logger):
                loggers[value.name] = value
    assert {
        "handlers.pipeline",
        "handlers.registry.vertex",
        "handlers.validation.sandbox.process",
    } <= set(loggers)
    for name, logger in loggers.items():
        logger.info("hello from %s", name)
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert {line["logger"] for line in lines} == set(loggers)
    for line in lines:
        assert line["severity"] == "INFO" and line["message"] == f"hello from {line['logger']}"
        assert line["logging.googleapis.com/sourceLocation"]["file"].endswith("test_logs.py")


def test_no_module_logs_outside_the_hierarchy() -> None:
    pattern = re.compile(r"getLogger\((?!__name__\)|LOGGER_NAME\))")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "handlers").rglob("*.py")
        if pattern.search(path.read_text()) and path.name != "logs.py"
    ]
    assert offenders == [], "log with get_logger(__name__) so the JSON handler sees the line"


def test_log_puts_fields_in_json_payload_and_outcome_in_labels(captured: io.StringIO) -> None:
    logs.log(
        logs.get_logger("handlers.pipeline"),
        logging.WARNING,
        "careful",
        outcome="rejected",
        reason="keras.lambda_layer",
    )
    (line,) = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert line["severity"] == "WARNING" and line["reason"] == "keras.lambda_layer"
    assert line["logging.googleapis.com/labels"] == {
        "component": "gcs-model-registrar",
        "outcome": "rejected",
    }
    # stacklevel: the source location is the caller of log(), not logs.py
    assert line["logging.googleapis.com/sourceLocation"]["function"] == (
        "test_log_puts_fields_in_json_payload_and_outcome_in_labels"
    )


def test_get_logger_maps_module_names_and_words_into_one_tree() -> None:
    assert logs.get_logger("handlers.gcs.records").name == "handlers.gcs.records"
    assert logs.get_logger("notify").name == "handlers.notify"
    assert logs.get_logger().name == logs.LOGGER_NAME == "handlers"


def test_exceptions_become_one_entry_with_a_stack_trace(captured: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logs.get_logger("x").exception("failed")
    (line,) = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert line["severity"] == "ERROR" and "ValueError: boom" in line["stack_trace"]
