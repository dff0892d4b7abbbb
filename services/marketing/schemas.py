"""Request and response bodies of the marketing API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shared.events.catalog import Email, LeadSource


class LeadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: str = Field(min_length=1, max_length=200)
    company: str = Field(min_length=1, max_length=200)
    title: str | None = Field(None, max_length=200)
    source: LeadSource
    campaign_id: uuid.UUID | None = None
    occurred_at: AwareDatetime | None = None

    @field_validator("email", mode="before")
    @classmethod
    def _normalise(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value


class LeadRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    company: str
    title: str | None
    source: str
    campaign_id: uuid.UUID | None
    status: str
    status_reason: str | None
    captured_at: datetime
