"""The simulator's plan: deterministic, causal, in the past, and shaped like its scenario."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from baton.simulate.customers import add_months
from baton.simulate.figures import planned_funnel
from baton.simulate.plan import Plan, Policies, make_plan
from baton.simulate.scenarios import BEFORE_THE_MODEL, SCENARIOS, THE_MODEL, Scenario
from baton.simulate.script import LeadScript
from services.customer_success.domain import HealthModel, Usage
from services.marketing.domain import Activity, ScoringModel, score

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def plan(
    scenario: Scenario = THE_MODEL,
    *,
    seed: int = 7,
    leads: int = 400,
    months: float = 6,
    policies: Policies | None = None,
) -> Plan:
    return make_plan(
        seed=seed, scenario=scenario, leads=leads, months=months, now=NOW, policies=policies
    )


@pytest.fixture(scope="module")
def large() -> dict[str, Plan]:
    """2,000 leads per scenario, over a year (so that enough deals close to measure)."""
    return {name: plan(s, leads=2_000, months=12) for name, s in SCENARIOS.items()}


def test_the_same_seed_gives_the_same_plan() -> None:
    assert plan(seed=3) == plan(seed=3)
    assert plan(seed=3) != plan(seed=4)
    assert [lead.email for lead in plan(seed=3).leads] != [lead.email for lead in plan().leads]


def test_every_lead_runs_forward_in_time_and_ends_before_now() -> None:
    start = NOW - timedelta(days=6 * 30.44)
    for lead in plan().leads:
        assert lead.steps[0].kind == "capture"
        assert lead.count("capture") == 1
        assert start <= lead.steps[0].at < NOW
        times = [step.at for step in lead.steps]
        assert times == sorted(times), lead.number
        assert times[-1] < NOW


DEPARTMENT = {  # step kind -> the wait that hands the lead to its department
    **dict.fromkeys(("touch", "qualify", "recycle", "disqualify"), "await_mql"),
    **dict.fromkeys(("accept", "stage", "win", "lose"), "await_opportunity"),
    **dict.fromkeys(
        ("onboarding", "usage", "nps", "upsell", "renewal", "churn", "feedback"), "await_account"
    ),
}


def test_a_department_acts_only_after_the_hand_off_reached_it() -> None:
    for lead in plan(leads=1_000).leads:
        kinds = [step.kind for step in lead.steps]
        for index, kind in enumerate(kinds):
            if kind in DEPARTMENT:
                assert DEPARTMENT[kind] in kinds[:index], (lead.number, kind)
        if "qualify" in kinds:
            assert kinds[kinds.index("qualify") + 1] == "await_opportunity"
        if "win" in kinds:
            assert kinds[kinds.index("win") + 1] == "await_account"
        if "recycle" in kinds and "await_recycled" in kinds:
            assert kinds[kinds.index("recycle") + 1] == "await_recycled"


def _activities_until_mql(lead: LeadScript) -> list[list[Activity]]:
    """The activity runs of a lead, split at each recycle (engagement starts over)."""
    runs: list[list[Activity]] = [[]]
    for step in lead.steps:
        if step.kind == "activity":
            runs[-1].append(Activity(str(step.body["type"]), step.at))
        elif step.kind == "await_recycled":
            runs.append([])
    return runs


def test_planned_mqls_cross_the_scoring_line_exactly_at_their_last_activity() -> None:
    model = ScoringModel()
    for lead in plan(leads=1_000).leads:
        capture = lead.steps[0].body
        title, company = capture["title"], str(capture["company"])
        mqls = lead.count("await_mql")
        for index, run in enumerate(_activities_until_mql(lead)):
            crossings = [
                score(model, title, company, run[: n + 1]).is_mql(model) for n in range(len(run))
            ]
            if index < mqls:  # this run ends with the hand-off
                assert crossings[-1] and not any(crossings[:-1]), lead.number
                mql = [s for s in lead.steps if s.kind == "await_mql"][index]
                assert mql.at == run[-1].occurred_at
            else:
                assert not any(crossings), lead.number


def test_a_stricter_scoring_model_takes_more_engagement() -> None:
    strict = Policies(scoring=ScoringModel(mql_min_score=120, mql_min_touches=5))
    relaxed, tight = plan(leads=600), plan(leads=600, policies=strict)
    assert relaxed.count("activity") < tight.count("activity")
    for lead in tight.leads:
        for run in _activities_until_mql(lead)[: lead.count("await_mql")]:
            capture = lead.steps[0].body
            result = score(strict.scoring, capture["title"], str(capture["company"]), run)
            assert result.total >= 120 and result.touches >= 5


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_rates_land_near_their_targets(name: str, large: dict[str, Plan]) -> None:
    scenario = SCENARIOS[name]
    funnel = planned_funnel(large[name])
    assert funnel.leads == 2_000
    assert funnel.mqls / funnel.leads == pytest.approx(scenario.mql_rate, abs=0.04)
    assert funnel.handling_rate == pytest.approx(scenario.handled_within_sla, abs=0.05)
    assert funnel.sql_rate == pytest.approx(scenario.sql_rate, abs=0.05)
    assert funnel.win_rate == pytest.approx(scenario.win_rate, abs=0.08)


def test_the_model_beats_the_time_before_it_at_every_hand_off(large: dict[str, Plan]) -> None:
    model = planned_funnel(large[THE_MODEL.name])
    before = planned_funnel(large[BEFORE_THE_MODEL.name])
    assert model.handling_rate and before.handling_rate
    assert model.handling_rate - before.handling_rate > 0.35  # case B: 40% -> 88%
    assert model.sql_rate and before.sql_rate and model.sql_rate > before.sql_rate + 0.07
    assert model.won > before.won * 1.5
    assert model.upsells > before.upsells


def test_touches_are_timed_against_the_response_sla_the_service_runs() -> None:
    short = Policies(response_time=timedelta(hours=4))
    for policies in (Policies(), short):
        funnel = planned_funnel(plan(leads=1_500, policies=policies), policies.response_time)
        assert funnel.handling_rate == pytest.approx(THE_MODEL.handled_within_sla, abs=0.05)


def test_closing_follows_the_sales_policy() -> None:
    policies = Policies(loss_reasons=("price", "went dark"), accept_within=timedelta(hours=8))
    built = plan(leads=1_500, policies=policies)
    reasons = {s.body["reason"] for s in built.steps() if s.kind == "lose"}
    assert reasons and reasons <= {"price", "went dark"}
    for lead in built.leads:
        steps = list(lead.steps)
        for before, after in itertools.pairwise(steps):
            if after.kind == "accept":
                assert before.kind == "await_opportunity"
        qualified = [s for s in steps if s.kind == "qualify"]
        for answer in qualified:  # every criterion an SLA may ask for is answered
            assert all(answer.body[c] for c in ("need", "decision_maker", "budget", "timeline"))


def _bands(lead: LeadScript) -> list[str]:
    """The default health model's band after each of the lead's usage readings."""
    health, nps, bands = HealthModel(), None, []
    for step in lead.steps:
        if step.kind == "nps":
            nps = int(step.body["score"])
        elif step.kind == "usage":
            usage = Usage(**{k: step.body[k] for k in Usage.__dataclass_fields__})
            bands.append(health.band(health.score(health.factors(usage, nps))))
    return bands


def _trajectory(lead: LeadScript) -> str | None:
    waits = [s for s in lead.steps if s.kind == "await_account"]
    return str(waits[0].body["trajectory"]) if waits else None


@pytest.fixture(scope="module")
def customers() -> list[LeadScript]:
    """The leads that became customers, out of 6,000 over a year."""
    built = plan(leads=6_000, months=12)
    return [lead for lead in built.leads if _trajectory(lead)]


def test_drifting_customers_go_red_before_they_churn(customers: list[LeadScript]) -> None:
    churned = [lead for lead in customers if lead.count("churn")]
    assert len(churned) >= 5
    for lead in churned:
        assert _trajectory(lead) == "drift"
        assert _bands(lead)[-1] == "red", lead.number
        assert lead.steps[-1].kind == "churn"


def test_only_drifting_customers_go_red(customers: list[LeadScript]) -> None:
    assert len(customers) > 50
    for lead in customers:
        if _trajectory(lead) != "drift":
            assert "red" not in _bands(lead), lead.number
    drifting = [lead for lead in customers if _trajectory(lead) == "drift"]
    assert sum("red" in _bands(lead) for lead in drifting) > len(drifting) / 2


def test_campaign_costs_cover_the_window_month_by_month() -> None:
    built = plan(months=3)
    assert {c.channel for c in built.campaigns} == {"ads", "content", "webinar", "seminar", "event"}
    for campaign in built.campaigns:
        periods = [(start, end) for start, end, _ in campaign.costs]
        assert periods[0][0] == (NOW - timedelta(days=3 * 30.44)).date()
        assert periods[-1][1] == NOW.date()
        for (_, end), (start, _) in itertools.pairwise(periods):
            assert start == end + timedelta(days=1)
        assert all(amount > 0 for _, _, amount in campaign.costs)


def test_months_are_added_the_way_contracts_renew() -> None:
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)
    assert add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
