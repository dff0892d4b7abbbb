"""Customer Success rules, free of I/O: renewal dates, the health model, churn-risk drops."""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

Band = Literal["green", "yellow", "red"]
DEFAULT_WEIGHTS: dict[str, float] = {
    "active_user_ratio": 0.30,
    "login_frequency": 0.20,
    "key_feature_adoption": 0.25,
    "support_load": 0.10,
    "nps": 0.15,
}
DEFAULT_ONBOARDING = ("kickoff", "admin_setup", "data_import", "training", "first_value")


def renewal_date(contract_start: date, term_months: int) -> date:
    """The day the contract ends and is up for renewal (month arithmetic, clamped to month end)."""
    months = contract_start.month - 1 + term_months
    year, month = contract_start.year + months // 12, months % 12 + 1
    day = min(contract_start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)


@dataclass(frozen=True)
class Usage:
    active_users: int
    seats: int
    logins: int
    key_feature_adoption: float  # share of the key features in use, 0..1
    open_tickets: int


@dataclass(frozen=True)
class HealthModel:
    """A weighted average of usage factors (each 0..1), scaled to 0..100, cut into bands."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    red_below: int = 40
    yellow_below: int = 70
    logins_per_user_target: float = 20.0  # logins per active user in a period that count as 1.0
    tickets_limit: int = 10  # open tickets at which support load counts as 0
    nps_when_unknown: float = 7.0

    def factors(self, usage: Usage, nps: float | None) -> dict[str, float]:
        """Each factor from 0 (worst) to 1 (best)."""
        per_user = usage.logins / usage.active_users if usage.active_users else 0.0
        values = {
            "active_user_ratio": usage.active_users / usage.seats if usage.seats else 0.0,
            "login_frequency": per_user / self.logins_per_user_target,
            "key_feature_adoption": usage.key_feature_adoption,
            "support_load": 1 - usage.open_tickets / self.tickets_limit,
            "nps": (self.nps_when_unknown if nps is None else nps) / 10,
        }
        return {k: round(min(max(v, 0.0), 1.0), 4) for k, v in values.items()}

    def score(self, factors: Mapping[str, float]) -> int:
        total_weight = sum(self.weights.get(k, 0.0) for k in factors)
        if total_weight <= 0:
            return 0
        weighted = sum(self.weights.get(k, 0.0) * v for k, v in factors.items())
        return round(100 * weighted / total_weight)

    def band(self, score: int) -> Band:
        if score < self.red_below:
            return "red"
        return "yellow" if score < self.yellow_below else "green"

    def worst(self, factors: Mapping[str, float], count: int = 3) -> list[str]:
        """The weighted factors that pull the score down most, as readable reasons."""
        weighted = [(k, v) for k, v in factors.items() if self.weights.get(k, 0.0) > 0]
        ranked = sorted(weighted, key=lambda kv: (kv[1], -self.weights[kv[0]]))[:count]
        return [f"{name} at {value:.0%}" for name, value in ranked]


@dataclass(frozen=True)
class HealthChange:
    band_changed: bool
    churn_risk: bool  # raise ChurnRisk now
    risk_open: bool  # a drop into red not yet recovered from


def assess(previous: Band | None, current: Band, risk_open: bool) -> HealthChange:
    """One ChurnRisk per drop into red; none again until the account has left red."""
    if current == "red":
        return HealthChange(previous != current, churn_risk=not risk_open, risk_open=True)
    return HealthChange(previous != current, churn_risk=False, risk_open=False)
