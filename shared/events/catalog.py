"""Every event of DESIGN §3 as a pydantic model: the contract between the services."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.envelope import EventData

LeadSource = Literal["content", "seo", "ads", "seminar", "webinar", "event", "referral", "other"]
ActivityType = Literal[
    "page_view",
    "pricing_page_view",
    "content_download",
    "email_open",
    "email_click",
    "form_submit",
    "webinar_attended",
    "seminar_attended",
    "demo_request",
    "unsubscribe",
]
TouchChannel = Literal["call", "email", "meeting"]
TouchOutcome = Literal["connected", "no_answer", "voicemail", "replied", "bounced"]
Stage = Literal["qualification", "proposal", "quote", "approval", "negotiation", "won", "lost"]
HealthBand = Literal["green", "yellow", "red"]
FeedbackKind = Literal["feature_request", "complaint", "praise", "case_study"]

Name = Annotated[str, Field(min_length=1, max_length=200)]
OptionalName = Annotated[str | None, Field(max_length=200)]
Text = Annotated[str, Field(min_length=1, max_length=2000)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Money = Annotated[int, Field(ge=0)]
Percent = Annotated[int, Field(ge=0, le=100)]


class MqlRule(BaseModel):
    """The thresholds a lead crossed to become an MQL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: int
    min_touches: int = Field(ge=0)


class Contact(BaseModel):
    """The person Inside Sales spoke with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    email: Email
    title: OptionalName = None


# --- marketing ------------------------------------------------------------------------------


class _Marketing(EventData):
    producer = "marketing"
    aggregate_field = "lead_id"


class LeadCaptured(_Marketing):
    """A new lead entered the funnel."""

    event_name = "LeadCaptured"
    lead_id: uuid.UUID
    email: Email
    name: Name
    company: Name
    title: OptionalName = None
    source: LeadSource
    campaign_id: uuid.UUID | None = None


class LeadEngaged(_Marketing):
    """A lead did something that changes its score (a page view, a download, a webinar...)."""

    event_name = "LeadEngaged"
    lead_id: uuid.UUID
    activity: ActivityType
    points: int
    score: int
    touches: int = Field(ge=0)


class LeadQualified(_Marketing):
    """The MQL hand-off: Marketing passes a lead that crossed the score and touch thresholds."""

    event_name = "LeadQualified"
    lead_id: uuid.UUID
    email: Email
    name: Name
    company: Name
    title: OptionalName = None
    source: LeadSource
    campaign_id: uuid.UUID | None = None
    score: int
    touches: int = Field(ge=0)
    rule: MqlRule


class CampaignCostRecorded(_Marketing):
    """Money spent on a campaign over a period: the base of cost per lead and CAC."""

    event_name = "CampaignCostRecorded"
    aggregate_field = "campaign_id"
    campaign_id: uuid.UUID
    channel: LeadSource
    amount: Money
    currency: Currency
    period_start: date
    period_end: date


# --- inside sales ---------------------------------------------------------------------------


class _InsideSales(EventData):
    producer = "inside_sales"
    aggregate_field = "lead_id"


class LeadAccepted(_InsideSales):
    """Inside Sales took an MQL into its queue; first contact is due by `respond_by`."""

    event_name = "LeadAccepted"
    lead_id: uuid.UUID
    rep_id: uuid.UUID | None = None
    respond_by: AwareDatetime


class LeadContacted(_InsideSales):
    """An inside seller touched the lead (the first touch answers the response SLA)."""

    event_name = "LeadContacted"
    lead_id: uuid.UUID
    rep_id: uuid.UUID | None = None
    channel: TouchChannel
    outcome: TouchOutcome
    first_contact: bool
    # On the first contact: seconds from the MQL hand-off (the lead response time).
    response_seconds: int | None = Field(None, ge=0)


class LeadResponseSlaBreached(_InsideSales):
    """No first contact by the respond-by time."""

    event_name = "LeadResponseSlaBreached"
    lead_id: uuid.UUID
    rep_id: uuid.UUID | None = None
    respond_by: AwareDatetime


class LeadRecycled(_InsideSales):
    """Not ready yet: the lead goes back to Marketing for nurturing."""

    event_name = "LeadRecycled"
    lead_id: uuid.UUID
    reason: Text


class LeadDisqualified(_InsideSales):
    """Not a fit: the lead leaves the funnel for good."""

    event_name = "LeadDisqualified"
    lead_id: uuid.UUID
    reason: Text


class OpportunityCreated(_InsideSales):
    """The SQL hand-off: need and decision maker confirmed, passed to Field Sales."""

    event_name = "OpportunityCreated"
    aggregate_field = "opportunity_id"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    company: Name
    contact: Contact
    need: Annotated[str | None, Field(max_length=2000)] = None
    decision_maker: OptionalName = None
    budget: Money | None = None
    timeline: Annotated[str | None, Field(max_length=200)] = None
    estimated_amount: Money
    currency: Currency
    rep_id: uuid.UUID | None = None


# --- field sales ----------------------------------------------------------------------------


class _FieldSales(EventData):
    producer = "field_sales"
    aggregate_field = "opportunity_id"


class OpportunityAccepted(_FieldSales):
    """Field Sales took the SQL and named its owner."""

    event_name = "OpportunityAccepted"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    owner_id: uuid.UUID


class OpportunityStageChanged(_FieldSales):
    """The deal moved through the pipeline."""

    event_name = "OpportunityStageChanged"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    from_stage: Stage
    to_stage: Stage
    amount: Money
    probability: Percent


class OpportunityNeglected(_FieldSales):
    """Nobody accepted the SQL by `accept_by`: the lead-neglect rate counts these."""

    event_name = "OpportunityNeglected"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    accept_by: AwareDatetime


class DealWon(_FieldSales):
    """The hand-off to Customer Success: the customer signed."""

    event_name = "DealWon"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    company: Name
    amount: Money
    currency: Currency
    mrr: Money
    term_months: int = Field(ge=1, le=120)
    contract_start: date
    owner_id: uuid.UUID


class DealLost(_FieldSales):
    """The customer said no (the reason feeds the baton meeting)."""

    event_name = "DealLost"
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID
    reason: Text


# --- customer success -----------------------------------------------------------------------


class _CustomerSuccess(EventData):
    producer = "customer_success"
    aggregate_field = "account_id"


class CustomerOnboarded(_CustomerSuccess):
    """The onboarding checklist is complete."""

    event_name = "CustomerOnboarded"
    account_id: uuid.UUID
    opportunity_id: uuid.UUID
    lead_id: uuid.UUID


class HealthScoreChanged(_CustomerSuccess):
    """The account's health moved to another band."""

    event_name = "HealthScoreChanged"
    account_id: uuid.UUID
    score: Percent
    band: HealthBand
    factors: dict[Annotated[str, Field(max_length=100)], float] = Field(max_length=50)


class ChurnRisk(_CustomerSuccess):
    """The hand-off back to sales: the account dropped into red."""

    event_name = "ChurnRisk"
    account_id: uuid.UUID
    lead_id: uuid.UUID
    health_score: Percent
    band: HealthBand
    reasons: list[Annotated[str, Field(max_length=500)]] = Field(max_length=20)
    mrr_at_risk: Money
    currency: Currency


class NpsRecorded(_CustomerSuccess):
    """A customer answered the NPS question."""

    event_name = "NpsRecorded"
    account_id: uuid.UUID
    score: int = Field(ge=0, le=10)
    comment: Annotated[str | None, Field(max_length=2000)] = None


class UpsellWon(_CustomerSuccess):
    """The customer bought more (upsell or cross-sell)."""

    event_name = "UpsellWon"
    account_id: uuid.UUID
    mrr_delta: int = Field(gt=0)
    currency: Currency
    product: Name


class ContractRenewed(_CustomerSuccess):
    """The customer renewed, at `mrr`."""

    event_name = "ContractRenewed"
    account_id: uuid.UUID
    mrr: Money
    # Optional additions: the MRR before the renewal (its change is expansion or contraction).
    previous_mrr: Money | None = None
    currency: Currency | None = None


class CustomerChurned(_CustomerSuccess):
    """The customer left."""

    event_name = "CustomerChurned"
    account_id: uuid.UUID
    mrr_lost: Money
    reason: Text
    currency: Currency | None = None  # optional addition: the currency of `mrr_lost`


class CustomerFeedbackShared(_CustomerSuccess):
    """The customer's voice, passed to Marketing and Sales."""

    event_name = "CustomerFeedbackShared"
    account_id: uuid.UUID
    kind: FeedbackKind
    text: Annotated[str, Field(min_length=1, max_length=5000)]


CATALOG: tuple[type[EventData], ...] = (
    LeadCaptured,
    LeadEngaged,
    LeadQualified,
    CampaignCostRecorded,
    LeadAccepted,
    LeadContacted,
    LeadResponseSlaBreached,
    LeadRecycled,
    LeadDisqualified,
    OpportunityCreated,
    OpportunityAccepted,
    OpportunityStageChanged,
    OpportunityNeglected,
    DealWon,
    DealLost,
    CustomerOnboarded,
    HealthScoreChanged,
    ChurnRisk,
    NpsRecorded,
    UpsellWon,
    ContractRenewed,
    CustomerChurned,
    CustomerFeedbackShared,
)
