"""The KPI formulas of DESIGN §7 over one period's totals (pure: no I/O).

Counts are flows by event time. Rates are cohort conversions counted on the day the cohort entered
(of the leads captured in a period, how many became MQLs so far), so they stay between 0 and 1.
A KPI whose denominator is empty is None, never 0 and never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.kpi.ordered import Ascending

AVERAGE_MONTH_DAYS = 365.25 / 12
DEPARTMENTS = ("marketing", "inside_sales", "field_sales", "customer_success", "shared")
# Customer Success numbers come from account events, which carry no lead source or campaign.
UNFILTERABLE = {
    "customer_success": ("*",),
    "shared": ("ltv", "ltv_to_cac"),
}

KpiValues = dict[str, Any]


@dataclass(frozen=True)
class PeriodFacts:
    """What the formulas need for one period."""

    days: int
    totals: Mapping[str, int]
    # Totals of the days before the period: the opening customer count and MRR.
    opening: Mapping[str, int] = field(default_factory=dict)
    response_hours: Sequence[float] = ()
    sales_cycle_days: Sequence[float] = ()
    velocity_days: Mapping[str, Sequence[float]] = field(default_factory=dict)
    filtered: bool = False


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when there is nothing to divide by."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 6)


def _ascending(values: Sequence[float]) -> Sequence[float]:
    return values if isinstance(values, Ascending) else sorted(values)


def median(values: Sequence[float]) -> float | None:
    """The middle value, or the mean of the two middle ones (as `statistics.median`)."""
    if not values:
        return None
    ordered = _ascending(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[middle], 4)
    return round((ordered[middle - 1] + ordered[middle]) / 2, 4)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least `pct`% of values at or below."""
    if not values:
        return None
    ordered = _ascending(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return round(ordered[rank - 1], 4)


def marketing(f: PeriodFacts) -> KpiValues:
    t = f.totals
    cost = t.get("marketing_cost", 0)
    return {
        "leads_captured": t.get("leads_captured", 0),
        "mql_count": t.get("mqls", 0),
        "lead_to_mql_rate": ratio(t.get("leads_to_mql", 0), t.get("leads_captured", 0)),
        "marketing_cost": cost,
        "cost_per_lead": ratio(cost, t.get("leads_captured", 0)),
        "cost_per_mql": ratio(cost, t.get("mqls", 0)),
        "content_downloads": t.get("content_downloads", 0),
    }


def inside_sales(f: PeriodFacts) -> KpiValues:
    t = f.totals
    mqls = t.get("mqls", 0)
    return {
        "mqls_received": mqls,
        "contact_rate": ratio(t.get("mqls_contacted", 0), mqls),
        "sql_rate": ratio(t.get("mqls_to_sql", 0), mqls),
        "lead_response_time": {
            "median_hours": median(f.response_hours),
            "p90_hours": percentile(f.response_hours, 90),
        },
        "handling_rate": ratio(t.get("mqls_in_sla", 0), mqls),
        "sla_breaches": t.get("mqls_breached", 0),
    }


def field_sales(f: PeriodFacts) -> KpiValues:
    t = f.totals
    won, lost = t.get("deals_won", 0), t.get("deals_lost", 0)
    return {
        "opportunity_count": t.get("sqls", 0),
        "deals_won": won,
        "deals_lost": lost,
        "win_rate": ratio(won, won + lost),
        "revenue_won": t.get("revenue_won", 0),
        "neglect_rate": ratio(t.get("sqls_neglected", 0), t.get("sqls", 0)),
        "avg_deal_size": ratio(t.get("revenue_won", 0), won),
        "sales_cycle_days": median(f.sales_cycle_days),
    }


def opening_customers(opening: Mapping[str, int]) -> int:
    return opening.get("deals_won", 0) - opening.get("customers_churned", 0)


def opening_mrr(opening: Mapping[str, int]) -> int:
    return (
        opening.get("mrr_new", 0)
        + opening.get("mrr_expansion", 0)
        - opening.get("mrr_contraction", 0)
        - opening.get("mrr_churned", 0)
    )


def lifetime_value(f: PeriodFacts) -> float | None:
    """ARPA / monthly revenue churn: the period's revenue churn scaled to an average month."""
    customers, mrr = opening_customers(f.opening), opening_mrr(f.opening)
    arpa = ratio(mrr, customers)
    churn = ratio(f.totals.get("mrr_churned", 0), mrr)
    if arpa is None or not churn or not f.days:
        return None
    return round(arpa / (churn * AVERAGE_MONTH_DAYS / f.days), 2)


def customer_success(f: PeriodFacts) -> KpiValues:
    t = f.totals
    customers, mrr = opening_customers(f.opening), opening_mrr(f.opening)
    responses = t.get("nps_responses", 0)
    nps = ratio(100 * (t.get("nps_promoters", 0) - t.get("nps_detractors", 0)), responses)
    retained = mrr + t.get("mrr_expansion", 0) - t.get("mrr_contraction", 0)
    return {
        "customers_at_start": customers,
        "mrr_at_start": mrr,
        "customers_churned": t.get("customers_churned", 0),
        "logo_churn_rate": ratio(t.get("customers_churned", 0), customers),
        "revenue_churn_rate": ratio(t.get("mrr_churned", 0), mrr),
        "nps": None if nps is None else round(nps, 2),
        "nps_responses": responses,
        "upsell_count": t.get("upsells", 0),
        "expansion_mrr": t.get("mrr_expansion", 0),
        "nrr": ratio(retained - t.get("mrr_churned", 0), mrr),
        "ltv": lifetime_value(f),
        "churn_risks": t.get("churn_risks", 0),
    }


def shared(f: PeriodFacts) -> KpiValues:
    t = f.totals
    ltv = lifetime_value(f)
    cac = ratio(t.get("marketing_cost", 0), t.get("deals_won", 0))
    return {
        "overall_win_rate": ratio(t.get("sqls_won", 0), t.get("sqls", 0)),
        "ltv": ltv,
        "lead_to_customer_rate": ratio(t.get("leads_to_customer", 0), t.get("leads_captured", 0)),
        "cac": cac,
        "ltv_to_cac": ratio(ltv, cac),
        "funnel_velocity_days": {
            stage: median(f.velocity_days.get(stage, ()))
            for stage in ("lead_to_mql", "mql_to_sql", "sql_to_won")
        },
        "sla_compliance": {
            "mql": ratio(t.get("mqls_in_sla", 0), t.get("mqls", 0)),
            "sql": ratio(t.get("sqls_accepted_in_sla", 0), t.get("sqls", 0)),
            "deal": ratio(t.get("deals_onboarded_in_sla", 0), t.get("deals_won", 0)),
        },
    }


FORMULAS = {
    "marketing": marketing,
    "inside_sales": inside_sales,
    "field_sales": field_sales,
    "customer_success": customer_success,
    "shared": shared,
}


def department_kpis(department: str, f: PeriodFacts) -> KpiValues:
    """One department's KPIs; with a source/campaign filter, those that cannot be filtered are
    None."""
    values = FORMULAS[department](f)
    if f.filtered:
        unfilterable = UNFILTERABLE.get(department, ())
        for name in values:
            if "*" in unfilterable or name in unfilterable:
                values[name] = None
    return values
