"""Structured logs: one handler on the root logger, as text or one JSON object per line.

Every record carries the context of the task it was logged from (task name, queue, the ids the
task was given) and the worker's name, so a line from deep inside the import pipeline can be
found by its `job_id`. The context is a contextvar set around each task run by the task registry,
the one place both dispatchers (the in-process runner and the Celery worker) go through.
"""

from __future__ import annotations

import contextvars
import logging
import logging.config
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Task arguments that identify what a task works on, and the names they get in a log line.
# Anything else a task receives (a lease token, say) is never logged.
_ID_ARGUMENTS = {
    "job_id": "job_id",
    "endpoint_id": "endpoint_id",
    "event_id": "event_id",
    "delivery_id": "delivery_id",
}
_SHORT_NAMES = {"job_id": "job", "endpoint_id": "endpoint", "event_id": "event"}

_task_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "product_importer_task", default=None
)
_worker_name: str | None = None


def worker_name() -> str:
    """This process's name in logs; the Celery worker uses the same as its hostname."""
    global _worker_name
    if _worker_name is None:
        _worker_name = f"product-importer-{os.getpid()}@{socket.gethostname()}"
    return _worker_name


@contextmanager
def task_context(task: str, queue: str, kwargs: Mapping[str, Any]) -> Iterator[None]:
    """Log records made inside this block carry the task's name, queue and ids."""
    context: dict[str, Any] = {"task": task, "queue": queue}
    for argument, field in _ID_ARGUMENTS.items():
        if argument in kwargs:
            context[field] = kwargs[argument]
    token = _task_context.set(context)
    try:
        yield
    finally:
        _task_context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_task_context.get() or {})


class TaskContextFilter(logging.Filter):
    """Copies the task context onto every record the handler emits (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _task_context.get()
        record.worker = worker_name()
        if context:
            for key, value in context.items():
                setattr(record, key, value)
            record.context = " [" + " ".join(_compact(context)) + "]"
        else:
            record.context = ""
        return True


def _compact(context: Mapping[str, Any]) -> Iterator[str]:
    yield str(context.get("task", "task"))
    for field, value in context.items():
        if field not in ("task", "queue"):
            yield f"{_SHORT_NAMES.get(field, field)}={value}"


class JsonLineFormatter(JsonFormatter):
    """time, level, logger, message, then the task context (and exc_info on one line)."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # The compact context repeats fields JSON has; uvicorn adds an ANSI-coloured copy.
            reserved_attrs=[*RESERVED_ATTRS, "context", "color_message"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


TEXT_FORMAT = "%(levelname)s %(name)s%(context)s: %(message)s"


def dict_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` document (also handed to uvicorn, whose worker processes
    apply it themselves): one stderr handler on the root; uvicorn's and Celery's loggers
    propagate to it instead of keeping handlers of their own."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonLineFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    propagate = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"task_context": {"()": f"{__name__}.TaskContextFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["task_context"],
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {**propagate, "level": level},
            "uvicorn.error": {**propagate, "level": level},
            "uvicorn.access": {**propagate, "level": level},
            "celery": {**propagate, "level": level},
            # Migration chatter on every start is noise below a warning.
            "alembic": {**propagate, "level": "WARNING"},
            # httpx logs every request's full URL at INFO: a feed's or a webhook's URL may
            # carry a token in its query. Failures are reported by our own lines instead.
            "httpx": {**propagate, "level": "WARNING"},
            "paramiko": {**propagate, "level": "WARNING"},
        },
    }


def configure(log_format: LogFormat = "text", level: str = "INFO") -> None:
    logging.config.dictConfig(dict_config(log_format, level))
    # Python warnings (Celery's, say) become records too, so a JSON stream stays all JSON.
    logging.captureWarnings(True)
