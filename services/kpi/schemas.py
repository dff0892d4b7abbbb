"""Request and response bodies of the KPI API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class EventCounts(BaseModel):
    """How many events of each type happened in `[from, to)`, by event time."""

    from_: datetime | None
    to: datetime | None
    counts: dict[str, int]
