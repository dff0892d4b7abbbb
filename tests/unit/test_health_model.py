"""The health model, bands and the once-per-drop rule, as pure rules."""

from __future__ import annotations

import pytest

from services.customer_success.domain import HealthModel, Usage, assess

HEALTHY = Usage(active_users=90, seats=100, logins=1800, key_feature_adoption=0.8, open_tickets=1)
SINKING = Usage(active_users=10, seats=100, logins=30, key_feature_adoption=0.1, open_tickets=9)


def test_factors_are_between_zero_and_one() -> None:
    factors = HealthModel().factors(HEALTHY, nps=9)
    assert factors == {
        "active_user_ratio": 0.9,
        "login_frequency": 1.0,  # 20 logins per active user: the target
        "key_feature_adoption": 0.8,
        "support_load": 0.9,
        "nps": 0.9,
    }
    extreme = HealthModel().factors(Usage(0, 10, 0, 0.0, 50), nps=0)
    assert set(extreme.values()) == {0.0}


def test_score_is_the_weighted_average_scaled_to_100() -> None:
    model = HealthModel(weights={"active_user_ratio": 3, "nps": 1})
    assert model.score({"active_user_ratio": 1.0, "nps": 0.0}) == 75
    assert HealthModel().score(HealthModel().factors(HEALTHY, 9)) == 90  # 89.5
    assert HealthModel().score(HealthModel().factors(SINKING, 3)) == 14


@pytest.mark.parametrize(
    ("score", "band"),
    [(0, "red"), (39, "red"), (40, "yellow"), (69, "yellow"), (70, "green"), (100, "green")],
)
def test_band_thresholds(score: int, band: str) -> None:
    assert HealthModel().band(score) == band


def test_reasons_name_the_worst_factors() -> None:
    model = HealthModel()
    reasons = model.worst(model.factors(SINKING, nps=3))
    assert reasons[0].startswith("login_frequency") or reasons[0].startswith("active_user_ratio")
    assert len(reasons) == 3
    assert all(" at " in r and r.endswith("%") for r in reasons)


def test_churn_risk_once_per_drop_into_red() -> None:
    first = assess("yellow", "red", risk_open=False)
    assert first.churn_risk and first.band_changed and first.risk_open
    still = assess("red", "red", risk_open=True)
    assert not still.churn_risk and not still.band_changed and still.risk_open
    recovered = assess("red", "yellow", risk_open=True)
    assert not recovered.churn_risk and not recovered.risk_open
    again = assess("yellow", "red", risk_open=recovered.risk_open)
    assert again.churn_risk
    assert assess(None, "red", risk_open=False).churn_risk  # first reading already red
    assert not assess(None, "green", risk_open=False).churn_risk
