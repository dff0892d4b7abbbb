"""The CloudEvents 1.0 envelope (structured JSON mode) every Baton event travels in (DESIGN §3)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from shared.ids import new_uuid, texts_of

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PATTERN = r"^baton\.[A-Z][A-Za-z]+\.v[1-9][0-9]*$"


class EventParseError(ValueError):
    """An event that cannot be read: not JSON, not a CloudEvent, or data not matching its type."""


class EventData(BaseModel):
    """Base of every event's `data`: subclasses name the event, its version and its aggregate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_name: ClassVar[str]
    version: ClassVar[int] = 1
    producer: ClassVar[str]
    # The data field holding the aggregate id: it becomes `subject` and `partitionkey`.
    aggregate_field: ClassVar[str]

    @classmethod
    def event_type(cls) -> str:
        return f"baton.{cls.event_name}.v{cls.version}"

    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))


class _EventIdText:
    """An envelope's `event_id`: `id` as text, made at the first look and kept in the envelope (the
    inbox, the log context and the outbox each need it). `functools.cached_property` takes a
    lock at each first look, which costs as much as the text."""

    def __get__(self, envelope: EnvelopeAttributes | None, owner: type[EnvelopeAttributes]) -> str:
        if envelope is None:
            raise AttributeError("event_id is an envelope's")
        text = envelope.__dict__["event_id"] = str(envelope.id)  # found first from now on
        return text


class EnvelopeAttributes(BaseModel):
    """A CloudEvent's context attributes: all of its envelope but the data. A consumer's
    handlers get an event's envelope as these, its data apart, as its model (see
    `shared.events.parse_event`, which reads both in one validation)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(pattern=r"^/services/[a-z_]+$", max_length=100)
    type: str = Field(pattern=TYPE_PATTERN, max_length=100)
    time: AwareDatetime
    subject: str = Field(min_length=1, max_length=100)
    datacontenttype: Literal["application/json"] = "application/json"
    partitionkey: str = Field(min_length=1, max_length=100)
    correlationid: str = Field(min_length=1, max_length=100)
    causationid: str | None = Field(None, max_length=100)

    event_id: ClassVar[_EventIdText] = _EventIdText()


class Envelope(EnvelopeAttributes):
    """A CloudEvent as it is on the wire; `data` is kept as a plain mapping until decoded."""

    data: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))


def event_ids(envelopes: Sequence[EnvelopeAttributes]) -> list[str]:
    """The `event_id` of each of `envelopes`, made for all of them at once (`texts_of`) and kept
    in each, as `event_id` keeps it: a consumer's batch needs every one."""
    texts = texts_of([envelope.id for envelope in envelopes])
    for envelope, text in zip(envelopes, texts, strict=True):
        envelope.__dict__["event_id"] = text
    return texts


def new_event(
    data: EventData,
    *,
    time: datetime | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Wrap `data` in an envelope; `time` is when it happened in the business (default: now)."""
    aggregate = data.aggregate_id()
    when = time or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("event time must carry a time zone")
    return Envelope(
        id=event_id or new_uuid(),
        source=f"/services/{data.producer}",
        type=data.event_type(),
        time=when,
        subject=aggregate,
        partitionkey=aggregate,
        correlationid=correlation_id or aggregate,
        causationid=causation_id,
        data=data.model_dump(mode="json"),
    )


def envelope_json(
    data_type: type[EventData],
    data: Mapping[str, Any],
    *,
    event_id: uuid.UUID | str,
    time: datetime,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> bytes:
    """The wire form of an event whose `data` is already valid as `data_type` (each field by
    name, as JSON would hold it, or as a UUID or an aware datetime; `event_id` a UUID or its
    canonical text): byte for byte what
    `new_event(data_type(**data), ...).to_json()` gives, without validating it again, for bulk
    paths whose input was validated against the same field types."""
    if time.tzinfo is None:
        raise ValueError("event time must carry a time zone")
    source, event_type, aggregate_field, fields = _shape(data_type)
    aggregate = str(data[aggregate_field])
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": time,
        "subject": aggregate,
        "datacontenttype": "application/json",
        "partitionkey": aggregate,
        "correlationid": correlation_id or aggregate,
    }
    if causation_id is not None:
        envelope["causationid"] = causation_id
    envelope["data"] = {name: data[name] for name in fields}
    # orjson writes UUIDs and datetimes as pydantic's JSON mode does, given "Z" for UTC.
    return orjson.dumps(envelope, option=orjson.OPT_UTC_Z)


@functools.cache
def _shape(data_type: type[EventData]) -> tuple[str, str, str, tuple[str, ...]]:
    """What every envelope of `data_type` shares: source, type, aggregate field, data fields."""
    return (
        f"/services/{data_type.producer}",
        data_type.event_type(),
        data_type.aggregate_field,
        tuple(data_type.model_fields),
    )


def parse_envelope(raw: bytes | str) -> Envelope:
    """Read one envelope from the wire, raising `EventParseError` naming what is wrong."""
    try:
        return Envelope.model_validate_json(raw)
    except ValidationError as exc:
        raise EventParseError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "event"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def decode_data(envelope: Envelope, model: type[EventData]) -> EventData:
    """Validate the envelope's `data` against the model its type names."""
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        raise EventParseError(f"{envelope.type}: {_describe(exc)}") from exc
