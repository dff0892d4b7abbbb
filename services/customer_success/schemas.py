"""Request and response bodies of the customer success API."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.customer_success.domain import DEFAULT_ONBOARDING, DEFAULT_WEIGHTS
from shared.events.catalog import FeedbackKind

Money = Annotated[int, Field(ge=0, le=10**15, description="minor units")]
Factor = Literal[
    "active_user_ratio", "login_frequency", "key_feature_adoption", "support_load", "nps"
]


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID = Field(description="the lead the journey began with (Marketing's id)")
    company: str
    owner_id: uuid.UUID
    mrr: int
    currency: str
    term_months: int
    contract_start: date
    renewal_date: date
    status: str
    won_at: datetime
    health_score: int | None
    band: str | None
    onboarded_at: datetime | None
    churned_at: datetime | None


class AccountPage(BaseModel):
    items: list[AccountRead]
    next_cursor: str | None


class TimelineEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    detail: dict[str, Any]
    occurred_at: datetime


class AccountDetail(AccountRead):
    factors: dict[str, float] | None
    deal_amount: int
    last_nps: int | None
    onboarding: dict[str, datetime | None]
    timeline: list[TimelineEntry]


class UsageBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    active_users: int = Field(ge=0, le=10_000_000)
    seats: int = Field(ge=1, le=10_000_000)
    logins: int = Field(ge=0, le=10**9)
    key_feature_adoption: float = Field(ge=0, le=1, description="share of key features in use")
    open_tickets: int = Field(0, ge=0, le=100_000)
    occurred_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _users_fit_seats(self) -> UsageBody:
        if self.active_users > self.seats:
            raise ValueError("active_users cannot exceed seats")
        return self


class HealthRead(BaseModel):
    score: int
    band: str
    factors: dict[str, float]
    band_changed: bool
    churn_risk: bool = Field(description="this reading raised a ChurnRisk")


class NpsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=0, le=10)
    comment: str | None = Field(None, max_length=2000)
    occurred_at: AwareDatetime | None = None


class UpsellBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mrr_delta: int = Field(gt=0, le=10**15)
    product: str = Field(min_length=1, max_length=200)
    occurred_at: AwareDatetime | None = None


class RenewalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mrr: Money
    term_months: int = Field(12, ge=1, le=120)
    occurred_at: AwareDatetime | None = None


class ChurnBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    occurred_at: AwareDatetime | None = None


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: FeedbackKind
    text: str = Field(min_length=1, max_length=5000)
    occurred_at: AwareDatetime | None = None


class StepBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    occurred_at: AwareDatetime | None = None


class HealthModelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[Factor, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS)  # type: ignore[arg-type]
    )
    red_below: int = Field(40, ge=1, le=100)
    yellow_below: int = Field(70, ge=1, le=100)
    logins_per_user_target: float = Field(20.0, gt=0, le=10_000)
    tickets_limit: int = Field(10, ge=1, le=100_000)
    onboarding_steps: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")]] = Field(
        default_factory=lambda: list(DEFAULT_ONBOARDING), min_length=1, max_length=30
    )

    @model_validator(mode="after")
    def _coherent(self) -> HealthModelBody:
        if self.red_below >= self.yellow_below:
            raise ValueError("red_below must be lower than yellow_below")
        if sum(self.weights.values()) <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class HealthModelRead(HealthModelBody):
    version: int = Field(description="0 is the built-in default, never changed")
    changed_by: str | None
    changed_at: datetime | None
