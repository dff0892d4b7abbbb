"""Logging for `baton serve`: the service's format in uvicorn's process and in each worker."""

from __future__ import annotations

import logging
from typing import Any


def service_handler(service: str) -> logging.Handler:
    """Configure logging as `shared.logs.configure_logging` does for `service`; its handler."""
    from services import settings_class
    from shared.logs import configure_logging

    configure_logging(settings_class(service)(), service)
    return logging.getLogger().handlers[0]


def uvicorn_log_config(service: str) -> dict[str, Any]:
    """A `dictConfig` for uvicorn, which applies it in every process it starts (workers too)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"service": {"()": "baton.logs.service_handler", "service": service}},
        "root": {"handlers": ["service"]},
    }
