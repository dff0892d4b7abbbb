"""Response bodies of the KPI API. Rates are fractions (0.25 = 25%); money is in minor units of
the reporting currency; a KPI with an empty denominator is null."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseTime(_Body):
    median_hours: float | None
    p90_hours: float | None


class MarketingKpis(_Body):
    leads_captured: int | None
    mql_count: int | None
    lead_to_mql_rate: float | None
    marketing_cost: int | None
    cost_per_lead: float | None
    cost_per_mql: float | None
    content_downloads: int | None


class InsideSalesKpis(_Body):
    mqls_received: int | None
    contact_rate: float | None
    sql_rate: float | None
    lead_response_time: ResponseTime | None
    handling_rate: float | None
    sla_breaches: int | None


class FieldSalesKpis(_Body):
    opportunity_count: int | None
    deals_won: int | None
    deals_lost: int | None
    win_rate: float | None
    revenue_won: int | None
    neglect_rate: float | None
    avg_deal_size: float | None
    sales_cycle_days: float | None


class CustomerSuccessKpis(_Body):
    customers_at_start: int | None
    mrr_at_start: int | None
    customers_churned: int | None
    logo_churn_rate: float | None
    revenue_churn_rate: float | None
    nps: float | None
    nps_responses: int | None
    upsell_count: int | None
    expansion_mrr: int | None
    nrr: float | None
    ltv: float | None
    churn_risks: int | None


class FunnelVelocity(_Body):
    lead_to_mql: float | None
    mql_to_sql: float | None
    sql_to_won: float | None


class SlaCompliance(_Body):
    mql: float | None
    sql: float | None
    deal: float | None


class SharedKpis(_Body):
    overall_win_rate: float | None
    ltv: float | None
    lead_to_customer_rate: float | None
    cac: float | None
    ltv_to_cac: float | None
    funnel_velocity_days: FunnelVelocity | None
    sla_compliance: SlaCompliance | None


class Kpis(_Body):
    """The KPIs of one period, by department (only the one asked for on /v1/kpis/{department})."""

    marketing: MarketingKpis | None = None
    inside_sales: InsideSalesKpis | None = None
    field_sales: FieldSalesKpis | None = None
    customer_success: CustomerSuccessKpis | None = None
    shared: SharedKpis | None = None


class PeriodKpis(_Body):
    label: str = Field(description="2026-11-23, 2026-W48, 2026-11 or `total`")
    start: date
    end: date = Field(description="exclusive")
    kpis: Kpis


class Filters(_Body):
    source: str | None
    campaign_id: str | None


class KpiReport(_Body):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    granularity: str
    timezone: str
    currency: str
    filters: Filters
    periods: list[PeriodKpis]
    total: PeriodKpis
    notes: list[str] = Field(default_factory=list)


class FunnelStage(_Body):
    stage: str = Field(description="lead, mql, sql, won, retained")
    count: int
    conversion_from_previous: float | None
    median_days_from_previous: float | None = Field(
        description="for `retained`: days from the win to the first renewal"
    )


class Funnel(_Body):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    timezone: str
    filters: Filters
    stages: list[FunnelStage]


class ReasonCount(_Body):
    reason: str
    count: int


class Rejections(_Body):
    total: int
    reasons: list[ReasonCount]


class HandoffCompliance(_Body):
    handoff: str = Field(description="mql, sql, deal, churn_risk")
    passed: int
    accepted_in_sla: int | None
    breached: int | None
    open: int | None
    compliance_rate: float | None
    churned_after_risk: int | None = None
    mrr_at_risk: int | None = None
    rejected: dict[str, Rejections]


class SlaReport(_Body):
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True, validate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    timezone: str
    handoffs: list[HandoffCompliance]


class HandoffChange(_Body):
    passed: float | None
    compliance_rate: float | None


class HandoffWeek(_Body):
    handoff: str
    this_week: HandoffCompliance
    previous_week: HandoffCompliance
    change: HandoffChange


class KpiTrend(_Body):
    kpi: str
    this_week: float | None
    previous_week: float | None
    change: float | None


class BatonMeeting(_Body):
    week: str
    start: date
    end: date
    previous_week: str
    timezone: str
    currency: str
    handoffs: list[HandoffWeek]
    kpis: dict[str, list[KpiTrend]]
