"""A scripted fortnight of the relay (50 events) and the KPIs it must give, computed by hand.

Weeks (Asia/Tokyo): W10 = 2026-03-02..08, W11 = 2026-03-09..15. Two customers signed in February
(O0, O9) are the opening customer base. Leads L1-L3 come from a webinar campaign (C1, 700,000 JPY
over W10), L4-L5 from ads (C2, 300,000 JPY over 03-09..11), L6 from SEO.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from shared.events import (
    CampaignCostRecorded,
    ChurnRisk,
    Contact,
    ContractRenewed,
    CustomerChurned,
    CustomerOnboarded,
    DealLost,
    DealWon,
    Envelope,
    EventData,
    HealthScoreChanged,
    LeadAccepted,
    LeadCaptured,
    LeadContacted,
    LeadDisqualified,
    LeadEngaged,
    LeadQualified,
    LeadRecycled,
    LeadResponseSlaBreached,
    MqlRule,
    NpsRecorded,
    OpportunityAccepted,
    OpportunityCreated,
    OpportunityNeglected,
    UpsellWon,
    new_event,
)
from shared.settings import topic_of
from tests.helpers import auth, eventually, publish

JST = ZoneInfo("Asia/Tokyo")
START, MIDDLE, END = date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)
NS = uuid.UUID("6c1f0000-0000-4000-8000-000000000000")


def ids(name: str) -> uuid.UUID:
    """A stable id per name, so that the scenario is the same on every run."""
    return uuid.uuid5(NS, name)


def at(day: int, hour: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=JST)


def r(value: float) -> float:
    return round(value, 6)


LEAD = {n: ids(f"lead-{n}") for n in range(10)}
OPP = {n: ids(f"opportunity-{n}") for n in (0, 1, 2, 9)}
ACCOUNT = {n: ids(f"account-{n}") for n in (0, 1, 9)}
C1, C2 = ids("campaign-1"), ids("campaign-2")
REP, OWNER = ids("rep"), ids("owner")


def _lead(n: int, source: str, campaign: uuid.UUID | None) -> LeadCaptured:
    return LeadCaptured(
        lead_id=LEAD[n],
        email=f"lead{n}@example.jp",
        name=f"Lead {n}",
        company=f"Company {n}",
        source=source,
        campaign_id=campaign,  # type: ignore[arg-type]
    )


def _mql(n: int, source: str, campaign: uuid.UUID | None) -> LeadQualified:
    return LeadQualified(
        lead_id=LEAD[n],
        email=f"lead{n}@example.jp",
        name=f"Lead {n}",
        company=f"Company {n}",
        source=source,
        campaign_id=campaign,
        score=85,
        touches=3,  # type: ignore[arg-type]
        rule=MqlRule(min_score=80, min_touches=3),
    )


def _opportunity(o: int, lead: int) -> OpportunityCreated:
    return OpportunityCreated(
        opportunity_id=OPP[o],
        lead_id=LEAD[lead],
        company=f"Company {lead}",
        contact=Contact(name=f"Lead {lead}", email=f"lead{lead}@example.jp"),
        need="automation",
        decision_maker="CFO",
        estimated_amount=1_000_000,
        currency="JPY",
        rep_id=REP,
    )


def _won(o: int, lead: int, mrr: int) -> DealWon:
    return DealWon(
        opportunity_id=OPP[o],
        lead_id=LEAD[lead],
        company=f"Company {lead}",
        amount=12 * mrr,
        currency="JPY",
        mrr=mrr,
        term_months=12,
        contract_start=date(2026, 3, 1),
        owner_id=OWNER,
    )


def _touch(n: int, first: bool) -> LeadContacted:
    return LeadContacted(
        lead_id=LEAD[n], rep_id=REP, channel="call", outcome="connected", first_contact=first
    )


def events() -> list[Envelope]:
    """The 50 events, in the order they happened."""
    script: list[tuple[EventData, datetime, uuid.UUID | None]] = [
        # February: the opening customer base.
        (_won(0, 0, 200_000), at(10, 10, 2), LEAD[0]),
        (_won(9, 9, 300_000), at(11, 10, 2), LEAD[9]),
        # Marketing.
        (
            CampaignCostRecorded(
                campaign_id=C1,
                channel="webinar",
                amount=700_000,
                currency="JPY",
                period_start=date(2026, 3, 2),
                period_end=date(2026, 3, 8),
            ),
            at(2, 9),
            None,
        ),
        (
            CampaignCostRecorded(
                campaign_id=C2,
                channel="ads",
                amount=300_000,
                currency="JPY",
                period_start=date(2026, 3, 9),
                period_end=date(2026, 3, 11),
            ),
            at(9, 9),
            None,
        ),
        (_lead(1, "webinar", C1), at(2, 10), None),
        (_lead(2, "webinar", C1), at(2, 11), None),
        (_lead(3, "webinar", C1), at(3, 9), None),
        (_lead(4, "ads", C2), at(9, 10), None),
        (_lead(5, "ads", C2), at(10, 10), None),
        (_lead(6, "seo", None), at(10, 12), None),
        (
            LeadEngaged(
                lead_id=LEAD[1], activity="content_download", points=15, score=15, touches=1
            ),
            at(2, 12),
            None,
        ),
        (
            LeadEngaged(lead_id=LEAD[1], activity="page_view", points=1, score=16, touches=2),
            at(2, 13),
            None,
        ),
        (
            LeadEngaged(
                lead_id=LEAD[2], activity="content_download", points=15, score=15, touches=1
            ),
            at(3, 12),
            None,
        ),
        (
            LeadEngaged(
                lead_id=LEAD[4], activity="content_download", points=15, score=15, touches=1
            ),
            at(9, 11),
            None,
        ),
        (_mql(1, "webinar", C1), at(3, 10), None),
        (_mql(2, "webinar", C1), at(4, 10), None),
        (_mql(3, "webinar", C1), at(5, 10), None),
        (_mql(4, "ads", C2), at(10, 10), None),
        (_mql(5, "ads", C2), at(11, 10), None),
        # Inside Sales: respond within 24 h.
        *[
            (
                LeadAccepted(lead_id=LEAD[n], rep_id=REP, respond_by=mql + timedelta(hours=24)),
                mql,
                None,
            )
            for n, mql in (
                (1, at(3, 10)),
                (2, at(4, 10)),
                (3, at(5, 10)),
                (4, at(10, 10)),
                (5, at(11, 10)),
            )
        ],
        (_touch(1, True), at(3, 12), None),
        (_touch(1, False), at(4, 9), None),
        (
            LeadResponseSlaBreached(lead_id=LEAD[2], rep_id=REP, respond_by=at(5, 10)),
            at(5, 10),
            None,
        ),
        (_touch(2, True), at(6, 10), None),
        (_touch(3, True), at(5, 11), None),
        (_touch(4, True), at(10, 16), None),
        (
            LeadResponseSlaBreached(lead_id=LEAD[5], rep_id=REP, respond_by=at(12, 10)),
            at(12, 10),
            None,
        ),
        (LeadRecycled(lead_id=LEAD[3], reason="no budget this year"), at(6, 9), None),
        (LeadDisqualified(lead_id=LEAD[4], reason="student"), at(11, 9), None),
        (_opportunity(1, 1), at(5, 10), None),
        (_opportunity(2, 2), at(7, 10), None),
        # Field Sales: accept within 48 h.
        (
            OpportunityAccepted(opportunity_id=OPP[1], lead_id=LEAD[1], owner_id=OWNER),
            at(5, 15),
            None,
        ),
        (
            OpportunityNeglected(opportunity_id=OPP[2], lead_id=LEAD[2], accept_by=at(9, 10)),
            at(9, 10),
            None,
        ),
        (
            OpportunityAccepted(opportunity_id=OPP[2], lead_id=LEAD[2], owner_id=OWNER),
            at(9, 12),
            None,
        ),
        (_won(1, 1, 100_000), at(10, 10), None),
        (DealLost(opportunity_id=OPP[2], lead_id=LEAD[2], reason="price"), at(13, 10), None),
        # Customer Success.
        (
            CustomerOnboarded(account_id=ACCOUNT[1], opportunity_id=OPP[1], lead_id=LEAD[1]),
            at(12, 10),
            LEAD[1],
        ),
        (
            ChurnRisk(
                account_id=ACCOUNT[9],
                lead_id=LEAD[9],
                health_score=30,
                band="red",
                reasons=["low usage"],
                mrr_at_risk=300_000,
                currency="JPY",
            ),
            at(2, 10),
            LEAD[9],
        ),
        (
            HealthScoreChanged(
                account_id=ACCOUNT[9], score=30, band="red", factors={"logins": 0.1}
            ),
            at(2, 10),
            LEAD[9],
        ),
        (
            CustomerChurned(
                account_id=ACCOUNT[9], mrr_lost=300_000, reason="budget cut", currency="JPY"
            ),
            at(5, 10),
            LEAD[9],
        ),
        (
            UpsellWon(account_id=ACCOUNT[0], mrr_delta=50_000, currency="JPY", product="Analytics"),
            at(4, 10),
            LEAD[0],
        ),
        (NpsRecorded(account_id=ACCOUNT[0], score=10), at(3, 10), LEAD[0]),
        (NpsRecorded(account_id=ACCOUNT[9], score=8), at(4, 11), LEAD[9]),
        (NpsRecorded(account_id=ACCOUNT[1], score=7), at(10, 15), LEAD[1]),
        (NpsRecorded(account_id=ACCOUNT[0], score=3), at(11, 10), LEAD[0]),
        (
            ContractRenewed(
                account_id=ACCOUNT[0], mrr=300_000, previous_mrr=250_000, currency="JPY"
            ),
            at(12, 10),
            LEAD[0],
        ),
    ]
    return [
        new_event(
            data, time=when, correlation_id=str(lead) if lead else None, event_id=ids(f"event-{i}")
        )
        for i, (data, when, lead) in enumerate(script)
    ]


async def publish_all(bootstrap: str, envelopes: list[Envelope]) -> None:
    """Publish each event to its producer's topic with a plain aiokafka producer."""
    for envelope in envelopes:
        await publish(bootstrap, topic_of(envelope.source.rsplit("/", 1)[1]), envelope)


async def settled(client: httpx.AsyncClient, period: dict[str, str]) -> dict[str, Any]:
    """The weekly KPIs of `period` once they add up to the scenario's total and the consumer is
    idle (or, after a minute, the last ones seen, for the test to show the difference)."""
    read = auth("kpi:read")
    last: dict[str, Any] = {}

    async def complete() -> dict[str, Any] | None:
        nonlocal last
        response = await client.get(
            "/v1/kpis", params={**period, "granularity": "week"}, headers=read
        )
        assert response.status_code == 200, response.text
        last = response.json()
        status = (await client.get("/v1/rebuild", headers=read)).json()
        return last if last["total"]["kpis"] == TOTAL and status["lag"] == 0 else None

    with contextlib.suppress(AssertionError):  # the caller compares, and shows the difference
        await eventually(complete, timeout=60)
    return last


def _ltv(arpa: float, churn: float, days: int) -> float:
    return round(arpa / (churn * (365.25 / 12) / days), 2)


LTV_W10 = _ltv(250_000, 0.6, 7)
LTV_TOTAL = _ltv(250_000, 0.6, 14)

W10: dict[str, dict[str, Any]] = {
    "marketing": {
        "leads_captured": 3,
        "mql_count": 3,
        "lead_to_mql_rate": 1.0,
        "marketing_cost": 700_000,
        "cost_per_lead": r(700_000 / 3),
        "cost_per_mql": r(700_000 / 3),
        "content_downloads": 2,
    },
    "inside_sales": {
        "mqls_received": 3,
        "contact_rate": 1.0,
        "sql_rate": r(2 / 3),
        "lead_response_time": {"median_hours": 2.0, "p90_hours": 48.0},
        "handling_rate": r(2 / 3),
        "sla_breaches": 1,
    },
    "field_sales": {
        "opportunity_count": 2,
        "deals_won": 0,
        "deals_lost": 0,
        "win_rate": None,
        "revenue_won": 0,
        "neglect_rate": 0.5,
        "avg_deal_size": None,
        "sales_cycle_days": None,
    },
    "customer_success": {
        "customers_at_start": 2,
        "mrr_at_start": 500_000,
        "customers_churned": 1,
        "logo_churn_rate": 0.5,
        "revenue_churn_rate": 0.6,
        "nps": 50.0,
        "nps_responses": 2,
        "upsell_count": 1,
        "expansion_mrr": 50_000,
        "nrr": 0.5,
        "ltv": LTV_W10,
        "churn_risks": 1,
    },
    "shared": {
        "overall_win_rate": 0.5,
        "ltv": LTV_W10,
        "lead_to_customer_rate": r(1 / 3),
        "cac": None,
        "ltv_to_cac": None,
        "funnel_velocity_days": {"lead_to_mql": 1.9583, "mql_to_sql": 2.5, "sql_to_won": None},
        "sla_compliance": {"mql": r(2 / 3), "sql": 0.5, "deal": None},
    },
}
W11: dict[str, dict[str, Any]] = {
    "marketing": {
        "leads_captured": 3,
        "mql_count": 2,
        "lead_to_mql_rate": r(2 / 3),
        "marketing_cost": 300_000,
        "cost_per_lead": 100_000.0,
        "cost_per_mql": 150_000.0,
        "content_downloads": 1,
    },
    "inside_sales": {
        "mqls_received": 2,
        "contact_rate": 0.5,
        "sql_rate": 0.0,
        "lead_response_time": {"median_hours": 6.0, "p90_hours": 6.0},
        "handling_rate": 0.5,
        "sla_breaches": 1,
    },
    "field_sales": {
        "opportunity_count": 0,
        "deals_won": 1,
        "deals_lost": 1,
        "win_rate": 0.5,
        "revenue_won": 1_200_000,
        "neglect_rate": None,
        "avg_deal_size": 1_200_000.0,
        "sales_cycle_days": 5.0,
    },
    "customer_success": {
        "customers_at_start": 1,
        "mrr_at_start": 250_000,
        "customers_churned": 0,
        "logo_churn_rate": 0.0,
        "revenue_churn_rate": 0.0,
        "nps": -50.0,
        "nps_responses": 2,
        "upsell_count": 0,
        "expansion_mrr": 50_000,
        "nrr": 1.2,
        "ltv": None,
        "churn_risks": 0,
    },
    "shared": {
        "overall_win_rate": None,
        "ltv": None,
        "lead_to_customer_rate": 0.0,
        "cac": 300_000.0,
        "ltv_to_cac": None,
        "funnel_velocity_days": {"lead_to_mql": 1.0, "mql_to_sql": None, "sql_to_won": 5.0},
        "sla_compliance": {"mql": 0.5, "sql": None, "deal": 1.0},
    },
}
TOTAL: dict[str, dict[str, Any]] = {
    "marketing": {
        "leads_captured": 6,
        "mql_count": 5,
        "lead_to_mql_rate": r(5 / 6),
        "marketing_cost": 1_000_000,
        "cost_per_lead": r(1_000_000 / 6),
        "cost_per_mql": 200_000.0,
        "content_downloads": 3,
    },
    "inside_sales": {
        "mqls_received": 5,
        "contact_rate": 0.8,
        "sql_rate": 0.4,
        "lead_response_time": {"median_hours": 4.0, "p90_hours": 48.0},
        "handling_rate": 0.6,
        "sla_breaches": 2,
    },
    "field_sales": {
        "opportunity_count": 2,
        "deals_won": 1,
        "deals_lost": 1,
        "win_rate": 0.5,
        "revenue_won": 1_200_000,
        "neglect_rate": 0.5,
        "avg_deal_size": 1_200_000.0,
        "sales_cycle_days": 5.0,
    },
    "customer_success": {
        "customers_at_start": 2,
        "mrr_at_start": 500_000,
        "customers_churned": 1,
        "logo_churn_rate": 0.5,
        "revenue_churn_rate": 0.6,
        "nps": 0.0,
        "nps_responses": 4,
        "upsell_count": 1,
        "expansion_mrr": 100_000,
        "nrr": 0.6,
        "ltv": LTV_TOTAL,
        "churn_risks": 1,
    },
    "shared": {
        "overall_win_rate": 0.5,
        "ltv": LTV_TOTAL,
        "lead_to_customer_rate": r(1 / 6),
        "cac": 1_000_000.0,
        "ltv_to_cac": r(LTV_TOTAL / 1_000_000),
        "funnel_velocity_days": {"lead_to_mql": 1.0, "mql_to_sql": 2.5, "sql_to_won": 5.0},
        "sla_compliance": {"mql": 0.6, "sql": 0.5, "deal": 1.0},
    },
}

FUNNEL = [
    {
        "stage": "lead",
        "count": 6,
        "conversion_from_previous": None,
        "median_days_from_previous": None,
    },
    {
        "stage": "mql",
        "count": 5,
        "conversion_from_previous": r(5 / 6),
        "median_days_from_previous": 1.0,
    },
    {"stage": "sql", "count": 2, "conversion_from_previous": 0.4, "median_days_from_previous": 2.5},
    {"stage": "won", "count": 1, "conversion_from_previous": 0.5, "median_days_from_previous": 5.0},
    {
        "stage": "retained",
        "count": 1,
        "conversion_from_previous": 1.0,
        "median_days_from_previous": None,
    },
]


def _rejected(**kinds: dict[str, int]) -> dict[str, Any]:
    return {
        kind: {
            "total": sum(reasons.values()),
            "reasons": [{"reason": k, "count": v} for k, v in reasons.items()],
        }
        for kind, reasons in kinds.items()
    }


SLA = [
    {
        "handoff": "mql",
        "passed": 5,
        "accepted_in_sla": 3,
        "breached": 2,
        "open": 0,
        "compliance_rate": 0.6,
        "churned_after_risk": None,
        "mrr_at_risk": None,
        "rejected": _rejected(recycled={"no budget this year": 1}, disqualified={"student": 1}),
    },
    {
        "handoff": "sql",
        "passed": 2,
        "accepted_in_sla": 1,
        "breached": 1,
        "open": 0,
        "compliance_rate": 0.5,
        "churned_after_risk": None,
        "mrr_at_risk": None,
        "rejected": _rejected(lost={"price": 1}),
    },
    {
        "handoff": "deal",
        "passed": 1,
        "accepted_in_sla": 1,
        "breached": 0,
        "open": 0,
        "compliance_rate": 1.0,
        "churned_after_risk": None,
        "mrr_at_risk": None,
        "rejected": _rejected(churned={"budget cut": 1}),
    },
    {
        "handoff": "churn_risk",
        "passed": 1,
        "accepted_in_sla": None,
        "breached": None,
        "open": None,
        "compliance_rate": None,
        "churned_after_risk": 1,
        "mrr_at_risk": 300_000,
        "rejected": _rejected(churn_risk={"low usage": 1}),
    },
]
