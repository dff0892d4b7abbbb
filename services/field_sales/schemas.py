"""Request and response bodies of the field sales API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class OpportunityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    lead_id: uuid.UUID
    company: str
    contact_name: str
    contact_email: str
    need: str
    estimated_amount: int
    currency: str
    stage: str
    created_at: datetime
