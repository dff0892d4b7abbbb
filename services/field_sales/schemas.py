"""Request and response bodies of the field sales API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.field_sales.domain import DEFAULT_LOSS_REASONS, DEFAULT_PROBABILITIES, OPEN_STAGES
from shared.events.catalog import Currency

OpenStage = Literal["qualification", "proposal", "quote", "approval", "negotiation"]
Money = Annotated[int, Field(ge=0, le=10**15, description="minor units")]


class OpportunityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    lead_id: uuid.UUID = Field(description="the lead the journey began with (Marketing's id)")
    company: str
    contact_name: str
    contact_email: str
    contact_title: str | None
    need: str
    decision_maker: str | None
    budget: int | None
    timeline: str | None
    estimated_amount: int
    currency: str
    rep_id: uuid.UUID | None = Field(description="the inside seller who qualified it")
    stage: str
    amount: int
    probability: int
    expected_close: date | None
    owner_id: uuid.UUID | None
    created_at: datetime
    accept_by: datetime | None
    accepted_at: datetime | None
    neglected_at: datetime | None
    closed_at: datetime | None
    mrr: int | None
    term_months: int | None
    contract_start: date | None
    loss_reason: str | None


class OpportunityPage(BaseModel):
    items: list[OpportunityRead]
    next_cursor: str | None


class StageChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_stage: str
    to_stage: str
    amount: int
    probability: int
    occurred_at: datetime


class OpportunityDetail(OpportunityRead):
    history: list[StageChangeRead]


class AcceptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner_id: uuid.UUID
    occurred_at: AwareDatetime | None = None


class StageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: OpenStage
    amount: Money | None = Field(None, description="default: the current amount")
    probability: int | None = Field(None, ge=0, le=100, description="default: the stage's")
    expected_close: date | None = None
    occurred_at: AwareDatetime | None = None


class WinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Money
    mrr: Money
    term_months: int = Field(ge=1, le=120)
    contract_start: date
    currency: Currency | None = Field(None, description="default: the opportunity's")
    occurred_at: AwareDatetime | None = None


class LoseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=50, description="one of the policy's reasons")
    note: str | None = Field(None, max_length=2000)
    occurred_at: AwareDatetime | None = None


class BucketRead(BaseModel):
    count: int
    amount: int
    weighted_amount: float


class PipelineRead(BaseModel):
    currency: str | None
    total: BucketRead
    by_stage: dict[str, BucketRead]
    by_owner: dict[str, BucketRead]
    expected_closes_by_month: dict[str, BucketRead]


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_id: uuid.UUID
    lead_id: uuid.UUID
    opportunity_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    company: str | None
    health_score: int
    reasons: list[str]
    mrr_at_risk: int
    currency: str
    occurred_at: datetime


class PolicyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accept_hours: float = Field(48.0, gt=0, le=24 * 90)
    probabilities: dict[OpenStage, Annotated[int, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: {s: DEFAULT_PROBABILITIES[s] for s in OPEN_STAGES}  # type: ignore[arg-type]
    )
    loss_reasons: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=lambda: list(DEFAULT_LOSS_REASONS),
        min_length=1,
        max_length=50,
    )


class PolicyRead(PolicyBody):
    version: int = Field(description="0 is the built-in default, never changed")
    changed_by: str | None
    changed_at: datetime | None
