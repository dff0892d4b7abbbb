"""Request and response bodies of the customer success API."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    company: str
    owner_id: uuid.UUID
    mrr: int
    currency: str
    term_months: int
    contract_start: date
    renewal_date: date
    status: str
    won_at: datetime
