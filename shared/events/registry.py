"""From an event's `type` to its model."""

from __future__ import annotations

from shared.events.catalog import CATALOG
from shared.events.envelope import Envelope, EventData, EventParseError, decode_data

EVENT_TYPES: dict[str, type[EventData]] = {model.event_type(): model for model in CATALOG}


def model_for(event_type: str) -> type[EventData] | None:
    return EVENT_TYPES.get(event_type)


def decode(envelope: Envelope) -> EventData:
    """The envelope's data as the model its type names (EventParseError if unknown or invalid)."""
    model = model_for(envelope.type)
    if model is None:
        raise EventParseError(f"type: unknown event type {envelope.type!r}")
    return decode_data(envelope, model)
