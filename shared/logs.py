"""Logging as JSON lines (or readable console lines) carrying request, event and correlation ids."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from shared.settings import BatonSettings


class Event(Protocol):
    """What a log line takes from the event being handled."""

    @property
    def event_id(self) -> str: ...

    @property
    def correlationid(self) -> str: ...


request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# The event being handled (its id and journey are read when a line is written: a consumer sets
# this once per event, and most events log nothing).
event: ContextVar[Event | None] = ContextVar("event", default=None)

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
_SECRET_WORDS = ("password", "secret", "token", "authorization")


def context() -> dict[str, str]:
    """The ids a log line written here and now carries."""
    handled = event.get()
    found = {
        "request_id": request_id.get(),
        "event_id": handled.event_id if handled is not None else None,
        "correlation_id": handled.correlationid if handled is not None else None,
    }
    return {k: v for k, v in found.items() if v}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {}
    for key, value in record.__dict__.items():
        if key in _RESERVED or key.startswith("_"):
            continue
        extras[key] = "***" if any(w in key.lower() for w in _SECRET_WORDS) else value
    return extras


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._service:
            entry["service"] = self._service
        entry.update(context())
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = {**context(), **_extras(record)}
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: BatonSettings, service: str | None = None) -> None:
    """Send every log record (uvicorn's and aiokafka's too) to stderr in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        JsonFormatter(service) if settings.log_format == "json" else ConsoleFormatter()
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
