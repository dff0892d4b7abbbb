"""Every KPI formula of DESIGN §7 on hand-computed examples, empty denominators included."""

from __future__ import annotations

from collections import Counter

import pytest

from services.kpi.formulas import (
    PeriodFacts,
    customer_success,
    department_kpis,
    field_sales,
    inside_sales,
    marketing,
    percentile,
    ratio,
    shared,
)


def facts(days: int = 7, opening: dict[str, int] | None = None, **totals: int) -> PeriodFacts:
    return PeriodFacts(days=days, totals=Counter(totals), opening=Counter(opening or {}))


def test_ratio_is_none_without_a_denominator() -> None:
    assert ratio(3, 0) is None
    assert ratio(0, 4) == 0.0
    assert ratio(1, 3) == 0.333333


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([1.0, 2.0, 6.0, 48.0], 90) == 48.0  # rank ceil(3.6) = 4
    assert percentile([float(n) for n in range(1, 11)], 90) == 9.0  # rank 9 of 10


def test_marketing() -> None:
    kpis = marketing(
        facts(
            leads_captured=40,
            leads_to_mql=10,
            mqls=8,
            marketing_cost=1_000_000,
            content_downloads=12,
        )
    )
    assert kpis == {
        "leads_captured": 40,
        "mql_count": 8,
        "lead_to_mql_rate": 0.25,  # a cohort rate: of the 40 captured, 10 became MQLs
        "marketing_cost": 1_000_000,
        "cost_per_lead": 25_000.0,
        "cost_per_mql": 125_000.0,
        "content_downloads": 12,
    }


def test_marketing_with_no_leads_has_null_rates_and_costs() -> None:
    kpis = marketing(facts(marketing_cost=500))
    assert kpis["lead_to_mql_rate"] is None
    assert kpis["cost_per_lead"] is None
    assert kpis["cost_per_mql"] is None
    assert kpis["leads_captured"] == 0


def test_inside_sales() -> None:
    f = PeriodFacts(
        days=7,
        totals=Counter(mqls=10, mqls_contacted=9, mqls_to_sql=3, mqls_in_sla=8, mqls_breached=1),
        response_hours=[1.0, 3.0, 2.0, 30.0],
    )
    assert inside_sales(f) == {
        "mqls_received": 10,
        "contact_rate": 0.9,
        "sql_rate": 0.3,
        "lead_response_time": {"median_hours": 2.5, "p90_hours": 30.0},
        "handling_rate": 0.8,
        "sla_breaches": 1,
    }


def test_inside_sales_without_mqls() -> None:
    kpis = inside_sales(facts())
    assert kpis["contact_rate"] is None and kpis["sql_rate"] is None
    assert kpis["handling_rate"] is None
    assert kpis["lead_response_time"] == {"median_hours": None, "p90_hours": None}


def test_field_sales() -> None:
    f = PeriodFacts(
        days=30,
        totals=Counter(sqls=20, sqls_neglected=2, deals_won=3, deals_lost=1, revenue_won=9_000_000),
        sales_cycle_days=[30.0, 10.0, 20.0],
    )
    assert field_sales(f) == {
        "opportunity_count": 20,
        "deals_won": 3,
        "deals_lost": 1,
        "win_rate": 0.75,
        "revenue_won": 9_000_000,
        "neglect_rate": 0.1,
        "avg_deal_size": 3_000_000.0,
        "sales_cycle_days": 20.0,
    }


def test_field_sales_win_rate_is_null_with_nothing_closed() -> None:
    kpis = field_sales(facts(sqls=4))
    assert kpis["win_rate"] is None and kpis["avg_deal_size"] is None
    assert kpis["neglect_rate"] == 0.0


def test_customer_success() -> None:
    opening = {
        "deals_won": 12,
        "customers_churned": 2,
        "mrr_new": 1_100_000,
        "mrr_expansion": 100_000,
        "mrr_contraction": 0,
        "mrr_churned": 200_000,
    }
    f = facts(
        days=30,
        opening=opening,
        customers_churned=1,
        mrr_churned=100_000,
        mrr_expansion=50_000,
        mrr_contraction=10_000,
        upsells=2,
        nps_responses=10,
        nps_promoters=5,
        nps_detractors=2,
        churn_risks=3,
    )
    kpis = customer_success(f)
    # 10 customers and 1,000,000 MRR at the start of the period.
    assert kpis["customers_at_start"] == 10
    assert kpis["mrr_at_start"] == 1_000_000
    assert kpis["logo_churn_rate"] == 0.1
    assert kpis["revenue_churn_rate"] == 0.1
    assert kpis["nps"] == 30.0  # 50% promoters - 20% detractors
    assert kpis["upsell_count"] == 2
    assert kpis["nrr"] == 0.94  # (1,000,000 + 50,000 - 10,000 - 100,000) / 1,000,000
    # ARPA 100,000 / (10% churn over 30 days, scaled to an average month of 30.4375 days)
    assert kpis["ltv"] == round(100_000 / (0.1 * 30.4375 / 30), 2)
    assert kpis["churn_risks"] == 3


def test_nps_with_only_passives_is_zero_not_null() -> None:
    assert customer_success(facts(nps_responses=3))["nps"] == 0.0


def test_nps_without_answers_is_null() -> None:
    assert customer_success(facts())["nps"] is None


def test_churn_with_zero_customers_at_start_is_null() -> None:
    kpis = customer_success(facts(customers_churned=1, mrr_churned=5_000))
    assert kpis["customers_at_start"] == 0
    assert kpis["logo_churn_rate"] is None
    assert kpis["revenue_churn_rate"] is None
    assert kpis["nrr"] is None
    assert kpis["ltv"] is None


def test_ltv_is_null_without_churn() -> None:
    opening = {"deals_won": 2, "mrr_new": 200_000}
    kpis = customer_success(facts(opening=opening))
    assert kpis["revenue_churn_rate"] == 0.0
    assert kpis["ltv"] is None  # no churn: the lifetime has no end to measure


def test_shared() -> None:
    opening = {"deals_won": 4, "mrr_new": 400_000}
    f = PeriodFacts(
        days=30,
        totals=Counter(
            sqls=10,
            sqls_won=4,
            leads_captured=100,
            leads_to_customer=2,
            marketing_cost=600_000,
            deals_won=3,
            mrr_churned=40_000,
            mqls=20,
            mqls_in_sla=18,
            sqls_accepted_in_sla=9,
            deals_onboarded_in_sla=3,
        ),
        opening=Counter(opening),
        velocity_days={"lead_to_mql": [2.0, 4.0], "mql_to_sql": [1.0], "sql_to_won": []},
    )
    kpis = shared(f)
    ltv = round(100_000 / (0.1 * 30.4375 / 30), 2)
    assert kpis == {
        "overall_win_rate": 0.4,
        "ltv": ltv,
        "lead_to_customer_rate": 0.02,
        "cac": 200_000.0,
        "ltv_to_cac": round(ltv / 200_000, 6),
        "funnel_velocity_days": {"lead_to_mql": 3.0, "mql_to_sql": 1.0, "sql_to_won": None},
        "sla_compliance": {"mql": 0.9, "sql": 0.9, "deal": 1.0},
    }


def test_cac_is_null_without_new_customers() -> None:
    kpis = shared(facts(marketing_cost=100))
    assert kpis["cac"] is None and kpis["ltv_to_cac"] is None


@pytest.mark.parametrize("department", ["customer_success"])
def test_a_filtered_view_nulls_what_cannot_be_filtered(department: str) -> None:
    f = PeriodFacts(days=7, totals=Counter(nps_responses=2, nps_promoters=2), filtered=True)
    assert set(department_kpis(department, f).values()) == {None}
    assert department_kpis("shared", f)["ltv"] is None
    assert department_kpis("marketing", f)["leads_captured"] == 0
