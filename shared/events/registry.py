"""From an event's `type` to its model."""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, Literal, cast

from pydantic import Field, TypeAdapter, ValidationError, create_model

from shared.events.catalog import CATALOG
from shared.events.envelope import (
    Envelope,
    EnvelopeAttributes,
    EventData,
    EventParseError,
    decode_data,
)

EVENT_TYPES: dict[str, type[EventData]] = {model.event_type(): model for model in CATALOG}


def model_for(event_type: str) -> type[EventData] | None:
    return EVENT_TYPES.get(event_type)


def decode(envelope: Envelope) -> EventData:
    """The envelope's data as the model its type names (EventParseError if unknown or invalid)."""
    model = model_for(envelope.type)
    if model is None:
        raise EventParseError(f"type: unknown event type {envelope.type!r}")
    return decode_data(envelope, model)


def parse_event(raw: bytes | str) -> tuple[EnvelopeAttributes, EventData] | None:
    """An event of a known type read off the wire: its envelope's attributes, and its data as
    the model its type names, in one validation (a third less work than `parse_envelope`, then
    `decode`, which build the data as a mapping first and validate it again). None if it is not
    such an event (not one at all, of an unknown type, or with invalid data): those two then
    say what is wrong."""
    try:
        envelope = _typed_envelopes().validate_json(raw)
    except ValidationError:
        return None
    return envelope, cast(EventData, envelope.data)  # type: ignore[attr-defined]


@functools.cache
def _typed_envelopes() -> TypeAdapter[EnvelopeAttributes]:
    """Every type's envelope with its data's model, told apart by `type` (made at first use)."""
    typed = tuple(_typed_envelope(model) for model in CATALOG)
    union: Any = Annotated[functools.reduce(operator.or_, typed), Field(discriminator="type")]
    return TypeAdapter(union)


def _typed_envelope(model: type[EventData]) -> type[EnvelopeAttributes]:
    """The envelope of `model`'s type only, its data that model."""
    tag: Any = Literal[model.event_type()]
    name = f"{model.__name__}Envelope"
    return create_model(name, __base__=EnvelopeAttributes, type=(tag, ...), data=(model, ...))
