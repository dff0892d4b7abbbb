"""Request and response bodies of the marketing API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events.catalog import ActivityType, Currency, Email, LeadSource

Name = Annotated[str, Field(min_length=1, max_length=200)]


class LeadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    name: Name
    company: Name
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
    score: int
    touches: int
    last_activity_at: datetime | None
    qualified_at: datetime | None


class LeadPage(BaseModel):
    items: list[LeadRead]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class ScoreBreakdown(BaseModel):
    total: int
    fit: int
    engagement: int
    touches: int
    decayed: int = Field(description="engagement points lost to inactivity (<= 0)")
    fit_rules: dict[str, int]
    points_by_activity: dict[str, int]
    mql_min_score: int
    mql_min_touches: int
    model_version: int


class TimelineEntry(BaseModel):
    at: datetime
    kind: Literal["activity", "status"]
    what: str
    points: int | None = None
    reason: str | None = None


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_id: uuid.UUID
    lead_id: str
    kind: str
    text: str
    occurred_at: datetime


class LeadDetail(LeadRead):
    score_breakdown: ScoreBreakdown
    timeline: list[TimelineEntry]
    feedback: list[FeedbackRead]


class ActivityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ActivityType
    occurred_at: AwareDatetime | None = None


class ActivityResult(BaseModel):
    lead_id: uuid.UUID
    type: str
    points: int
    score: int
    touches: int
    status: str
    qualified: bool = Field(description="this activity made the lead an MQL")


class FitRuleModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal["title", "company"]
    contains: str = Field(min_length=1, max_length=100)
    points: int = Field(ge=-1000, le=1000)


class ScoringModelBody(BaseModel):
    """A whole scoring model; PUT replaces the current one with a new version."""

    model_config = ConfigDict(extra="forbid")

    activity_points: dict[ActivityType, Annotated[int, Field(ge=-1000, le=1000)]]
    fit_rules: list[FitRuleModel] = Field(default_factory=list, max_length=100)
    decay_after_days: float = Field(30.0, ge=0, le=3650)
    decay_half_life_days: float = Field(30.0, gt=0, le=3650)
    mql_min_score: int = Field(80, ge=-10_000, le=10_000)
    mql_min_touches: int = Field(3, ge=0, le=1000)


class ScoringModelRead(ScoringModelBody):
    version: int = Field(description="0 is the built-in default, never changed")
    changed_by: str | None
    changed_at: datetime | None


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    channel: LeadSource


class CampaignCostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=0, le=10**15, description="minor units of the currency")
    currency: Currency
    period_start: date
    period_end: date

    @model_validator(mode="after")
    def _period(self) -> CampaignCostCreate:
        if self.period_end < self.period_start:
            raise ValueError("period_end must not be before period_start")
        return self


class CampaignCostRead(CampaignCostCreate):
    model_config = ConfigDict(from_attributes=True)

    id: int
    campaign_id: uuid.UUID
    recorded_at: datetime


class CampaignRead(BaseModel):
    id: uuid.UUID
    name: str
    channel: str
    created_at: datetime
    leads: int
    mqls: int
    cost: dict[str, int] = Field(description="total cost per currency (minor units)")
    cost_per_lead: dict[str, float | None]
    cost_per_mql: dict[str, float | None]


class ImportRowError(BaseModel):
    line: int
    field: str
    reason: str


class ImportResult(BaseModel):
    rows: int
    created: int
    duplicates: int
    errors: list[ImportRowError]
