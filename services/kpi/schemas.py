"""Request and response bodies of the KPI API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class EventCounts(BaseModel):
    """How many events of each type happened in `[from, to)`, by event time."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    from_: datetime | None = Field(alias="from")
    to: datetime | None
    counts: dict[str, int]
