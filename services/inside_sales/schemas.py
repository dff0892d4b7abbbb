"""Request and response bodies of the inside sales API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.inside_sales.domain import Criterion
from shared.events.catalog import Currency, Email, TouchChannel, TouchOutcome

Name = Annotated[str, Field(min_length=1, max_length=200)]
Reason = Annotated[str, Field(min_length=1, max_length=2000)]


class RepCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email


class RepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    active: bool
    created_at: datetime


class QueueItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    lead_id: uuid.UUID
    email: str
    name: str
    company: str
    title: str | None
    source: str
    score: int = Field(description="the marketing score that made it an MQL")
    touches: int = Field(description="marketing touches before the hand-off")
    campaign_id: uuid.UUID | None
    status: str
    rep_id: uuid.UUID | None
    qualified_at: datetime
    respond_by: datetime
    first_contact_at: datetime | None
    sla_breached_at: datetime | None
    touch_count: int
    opportunity_id: uuid.UUID | None


class QueuePage(BaseModel):
    items: list[QueueItemRead]
    next_cursor: str | None


class TouchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: TouchChannel
    outcome: TouchOutcome
    notes: str | None = Field(None, max_length=5000)
    rep_id: uuid.UUID | None = None
    occurred_at: AwareDatetime | None = None


class TouchRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    rep_id: uuid.UUID | None
    channel: str
    outcome: str
    notes: str | None
    occurred_at: datetime


class TouchResult(TouchRead):
    first_contact: bool
    response_seconds: int | None = Field(description="MQL to first contact, on the first touch")


class LeadDetail(QueueItemRead):
    mql_rule: dict[str, Any] | None
    touch_log: list[TouchRead]
    qualification: dict[str, Any] | None
    close_reason: str | None


class AssignBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rep_id: uuid.UUID


class ContactBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email
    title: str | None = Field(None, max_length=200)


class QualifyBody(BaseModel):
    """What the hearing found out; the SLA's criteria say which answers are required."""

    model_config = ConfigDict(extra="forbid")

    need: str | None = Field(None, max_length=2000)
    decision_maker: str | None = Field(None, max_length=200)
    budget: int | None = Field(None, ge=0, le=10**15, description="minor units")
    timeline: str | None = Field(None, max_length=200)
    estimated_amount: int = Field(ge=0, le=10**15, description="minor units")
    currency: Currency = "JPY"
    contact: ContactBody | None = Field(None, description="default: the lead itself")
    occurred_at: AwareDatetime | None = None


class Qualified(BaseModel):
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    occurred_at: AwareDatetime | None = None


class SlaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_hours: float = Field(24.0, gt=0, le=24 * 90)
    sql_criteria: list[Criterion] = Field(["need", "decision_maker"], max_length=4)


class SlaRead(SlaBody):
    version: int = Field(description="0 is the built-in default, never changed")
    changed_by: str | None
    changed_at: datetime | None
