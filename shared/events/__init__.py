"""The event contract: the CloudEvents envelope, every event model and the type registry."""

from shared.events.catalog import *  # noqa: F403 (the catalog is the public surface)
from shared.events.catalog import CATALOG
from shared.events.envelope import (
    CONTENT_TYPE,
    Envelope,
    EventData,
    EventParseError,
    decode_data,
    new_event,
    parse_envelope,
)
from shared.events.registry import EVENT_TYPES, decode, model_for

__all__ = [
    "CATALOG",
    "CONTENT_TYPE",
    "EVENT_TYPES",
    "Envelope",
    "EventData",
    "EventParseError",
    "decode",
    "decode_data",
    "model_for",
    "new_event",
    "parse_envelope",
]
