"""Scoring, decay and the MQL line, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.marketing.domain import Activity, FitRule, ScoringModel, can_qualify, ratio, score

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
PLAIN = ScoringModel(fit_rules=())


def acts(*spec: tuple[str, float]) -> list[Activity]:
    """Activities as (type, days after T0)."""
    return [Activity(kind, T0 + timedelta(days=days)) for kind, days in spec]


def test_points_add_up_and_positive_activities_are_touches() -> None:
    result = score(
        PLAIN,
        None,
        "ACME",
        acts(("content_download", 0), ("webinar_attended", 1), ("unsubscribe", 2)),
    )
    assert result.total == 15 + 25 - 50
    assert result.touches == 2
    assert result.points_by_activity == {
        "content_download": 15,
        "webinar_attended": 25,
        "unsubscribe": -50,
    }
    assert result.last_activity_at == T0 + timedelta(days=2)


def test_fit_rules_match_title_and_company_case_insensitively() -> None:
    model = ScoringModel(
        fit_rules=(FitRule("title", "director", 15), FitRule("company", "university", -20))
    )
    result = score(model, "IT Director", "Osaka University Hospital", [])
    assert result.fit == -5
    assert dict(result.fit_rules) == {
        "title contains 'director'": 15,
        "company contains 'university'": -20,
    }
    assert score(model, None, "ACME", []).fit == 0


def test_engagement_decays_only_after_the_idle_period() -> None:
    model = ScoringModel(fit_rules=(), decay_after_days=30, decay_half_life_days=30)
    fresh = score(model, None, "A", acts(("demo_request", 0), ("page_view", 30)))
    assert fresh.engagement == 40 + 2
    faded = score(model, None, "A", acts(("demo_request", 0), ("page_view", 60)))
    assert faded.engagement == 20 + 2  # 30 idle days past the grace period: half of 40
    assert faded.decayed == -20


def test_backdated_history_scores_like_live_traffic() -> None:
    history = acts(("content_download", 0), ("webinar_attended", 45), ("demo_request", 50))
    live = score(PLAIN, None, "A", history)
    shuffled = score(PLAIN, None, "A", [history[2], history[0], history[1]])
    assert live == shuffled


@pytest.mark.parametrize(
    ("points", "touches", "is_mql"),
    [(80, 3, True), (79, 3, False), (80, 2, False), (120, 5, True)],
)
def test_mql_line_needs_score_and_touches(points: int, touches: int, is_mql: bool) -> None:
    model = ScoringModel(
        activity_points={"page_view": 1, "demo_request": points - (touches - 1)}, fit_rules=()
    )
    history = acts(("demo_request", 0), *[("page_view", 0.1 * (n + 1)) for n in range(touches - 1)])
    result = score(model, None, "A", history)
    assert (result.total, result.touches) == (points, touches)
    assert result.is_mql(model) is is_mql


def test_who_can_qualify() -> None:
    assert can_qualify("new") and can_qualify("nurturing") and can_qualify("recycled")
    assert not can_qualify("mql")
    assert not can_qualify("disqualified")


def test_ratio_is_null_without_a_denominator() -> None:
    assert ratio(100, 4) == 25
    assert ratio(100, 0) is None


def test_a_recycled_lead_starts_over_and_can_qualify_again() -> None:
    model = ScoringModel(fit_rules=())
    before = acts(("demo_request", 0), ("webinar_attended", 1), ("content_download", 2))
    assert score(model, None, "A", before).is_mql(model)
    recycled_at = T0 + timedelta(days=10)
    after_reset = score(model, None, "A", before, since=recycled_at)
    assert (after_reset.total, after_reset.touches) == (0, 0)
    assert can_qualify("recycled")
    later = before + acts(("demo_request", 20), ("webinar_attended", 21), ("email_click", 22))
    again = score(model, None, "A", later, since=recycled_at)
    assert (again.total, again.touches) == (40 + 25 + 5, 3)
    assert not again.is_mql(model)  # 70 < 80: history before the recycle no longer helps
    more = score(model, None, "A", [*later, *acts(("content_download", 23))], since=recycled_at)
    assert more.is_mql(model)


@pytest.mark.parametrize(
    ("title", "company"),
    [(None, "ACME"), ("Head of Sales", "ACME"), ("Student", "Tokyo University"), ("", "C")],
)
def test_a_new_leads_fit_points_are_its_score(title: str | None, company: str) -> None:
    model = ScoringModel()
    assert model.fit_points(title, company) == score(model, title, company, []).total
