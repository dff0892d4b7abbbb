"""Request and response bodies of the inside sales API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class QueueItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lead_id: uuid.UUID
    email: str
    name: str
    company: str
    title: str | None
    source: str
    score: int
    touches: int
    status: str
    qualified_at: datetime
    respond_by: datetime
