"""The customer part of a simulated journey: onboarding, usage, NPS, upsells, renewals, churn."""

from __future__ import annotations

import calendar
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from baton.simulate.scenarios import Scenario
from baton.simulate.script import Step
from services.customer_success.domain import HealthModel, Usage

Trajectory = Literal["healthy", "steady", "drift"]
ONBOARDING_STEPS = 5  # spread over the account's checklist, whatever its length
READING_EVERY = timedelta(days=14)  # a health check every other week
CHURN_REASONS = ("low adoption", "budget cut", "moved to a competitor", "project cancelled")
PRODUCTS = ("extra seats", "analytics add-on", "premium support", "API access", "SSO module")
PRAISE = (
    "The weekly baton meeting report saves our managers an hour every Monday.",
    "Onboarding was quick; our team was productive in the second week.",
)
CASE_STUDY = (
    "Cut lead response time from two days to four hours; happy to be a reference.",
    "Doubled qualified meetings in a quarter; open to a joint case study.",
)
COMPLAINTS = (
    "Too few of our users log in; the rollout stalled after the first team.",
    "Support tickets take too long to close.",
)
FEATURE_REQUESTS = ("An export to our BI tool, please.", "A mobile app for field staff.")


@dataclass(frozen=True)
class Deal:
    """What Customer Success starts from: the won deal."""

    won_at: datetime
    contract_start: date
    mrr: int
    term_months: int
    owner_id: str


def add_months(day: date, months: int) -> date:
    """`day` plus whole months, clamped to the month's end (how contracts renew)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def customer_steps(
    rng: random.Random, scenario: Scenario, deal: Deal, health: HealthModel, now: datetime
) -> list[Step]:
    """The account's life from the hand-off up to `now`, in event-time order.

    `health` is the model Customer Success scores with: the plan knows which reading puts the
    account in red (a ChurnRisk), and lets only drifting accounts get there.
    """
    trajectory = _trajectory(rng, scenario)
    wait = {"owner_id": deal.owner_id, "trajectory": trajectory}  # the trajectory: for readers
    start = datetime.combine(deal.contract_start, time(9), UTC)
    kickoff = at = max(deal.won_at, start) + timedelta(hours=rng.uniform(1, 48))
    later: list[Step] = []
    for position in range(ONBOARDING_STEPS):
        last = position == ONBOARDING_STEPS - 1
        later.append(Step(at, "onboarding", {"position": position, "last": last}))
        at += timedelta(days=rng.uniform(1, 6))
    churns = trajectory == "drift" and rng.random() < scenario.churn_when_red
    life = _Life(rng, deal, trajectory, churns, health)
    later += life.usage_and_voice(kickoff, now)
    upsell_share = scenario.upsell_rate / max(1 - scenario.drift_to_red, 1e-9)
    if trajectory != "drift" and rng.random() < upsell_share:
        upsell_at = kickoff + timedelta(days=rng.uniform(20, 100))
        delta = max(1_000, round(deal.mrr * rng.uniform(0.1, 0.4), -3))
        later.append(
            Step(upsell_at, "upsell", {"mrr_delta": int(delta), "product": rng.choice(PRODUCTS)})
        )
    later.extend(_renewals(deal, later, now))
    later.sort(key=lambda step: step.at)  # stable: same-time steps keep their causal order
    steps = [Step(deal.won_at, "await_account", wait)]
    for step in later:
        steps.append(step)
        if step.kind == "churn":
            break  # a churned account takes nothing more
    return steps


def _trajectory(rng: random.Random, scenario: Scenario) -> Trajectory:
    if rng.random() < scenario.drift_to_red:
        return "drift"
    return "healthy" if rng.random() < 0.7 else "steady"


@dataclass
class _Life:
    """Usage, NPS and feedback of one account along its trajectory."""

    rng: random.Random
    deal: Deal
    trajectory: Trajectory
    churns: bool
    health: HealthModel
    nps: int | None = None
    reading: Usage | None = None
    red_at: datetime | None = None
    recover_at: datetime | None = None

    def usage_and_voice(self, kickoff: datetime, now: datetime) -> list[Step]:
        """A reading every other week, NPS every quarter, feedback now and then."""
        rng = self.rng
        seats = max(5, round(self.deal.mrr / 4_000))
        steps: list[Step] = []
        level = rng.uniform(0.45, 0.6)
        at = kickoff + timedelta(days=rng.uniform(7, 14))
        next_nps = kickoff + timedelta(days=rng.uniform(40, 60))
        while at < now:
            level = _next_level(rng, self.trajectory, level, at, self.recover_at)
            reading = _reading(rng, seats, level)
            steps.append(Step(at, "usage", reading))
            self.reading = Usage(**{k: reading[k] for k in Usage.__dataclass_fields__})
            steps += self._if_red(at)
            if next_nps <= at:
                steps += self._nps(at + timedelta(hours=6), level)
                steps += self._if_red(at + timedelta(hours=6))
                next_nps += timedelta(days=90)
            at += READING_EVERY + timedelta(days=rng.uniform(-2, 2))
        return steps

    def _if_red(self, at: datetime) -> list[Step]:
        """On the first drop into red: the customer complains, then churns or is won back."""
        assert self.reading is not None
        health = self.health
        band = health.band(health.score(health.factors(self.reading, self.nps)))
        if band != "red" or self.red_at is not None:
            return []
        self.red_at = at
        rng = self.rng
        steps = [Step(at + timedelta(days=2), "feedback", _voice(rng, "complaint"))]
        if self.churns:
            churn_at = at + timedelta(days=rng.uniform(10, 40))
            steps.append(Step(churn_at, "churn", {"reason": rng.choice(CHURN_REASONS)}))
        else:  # Customer Success steps in and usage climbs back
            self.recover_at = at + timedelta(days=rng.uniform(15, 40))
        return steps

    def _nps(self, at: datetime, level: float) -> list[Step]:
        rng = self.rng
        self.nps = score = _nps(rng, level)
        steps = [Step(at, "nps", {"score": score})]
        if score >= 9 and rng.random() < 0.5:
            kind = rng.choice(("case_study", "praise"))
            steps.append(Step(at + timedelta(days=1), "feedback", _voice(rng, kind)))
        elif rng.random() < 0.15:
            steps.append(Step(at + timedelta(days=1), "feedback", _voice(rng, "feature_request")))
        return steps


def _next_level(
    rng: random.Random,
    trajectory: Trajectory,
    level: float,
    at: datetime,
    recover_at: datetime | None,
) -> float:
    """Usage level (0 bad .. 1 great) at the next reading."""
    if trajectory == "healthy":
        target = rng.uniform(0.82, 0.95)
    elif trajectory == "steady":
        target = rng.uniform(0.6, 0.74)
    elif recover_at is not None and at >= recover_at:
        target = rng.uniform(0.6, 0.7)
    else:  # the rollout stalls: fewer users, fewer logins, more tickets
        return max(0.1, level - rng.uniform(0.12, 0.22))
    return level + (target - level) * 0.6


def _reading(rng: random.Random, seats: int, level: float) -> dict[str, Any]:
    ratio = min(max(level + rng.gauss(0, 0.04), 0.02), 1.0)
    active = max(1, min(seats, round(seats * ratio)))
    per_user = 20 * min(max(level + rng.gauss(0, 0.06), 0.02), 1.2)
    return {
        "active_users": active,
        "seats": seats,
        "logins": round(active * per_user),
        "key_feature_adoption": round(min(max(level * 0.9 + rng.gauss(0, 0.04), 0.0), 1.0), 3),
        "open_tickets": max(0, round((1 - level) * 9 + rng.gauss(0, 1))),
    }


def _nps(rng: random.Random, level: float) -> int:
    return min(10, max(0, round(level * 11 + rng.gauss(0, 1.2) - 0.5)))


def _voice(rng: random.Random, kind: str) -> dict[str, str]:
    texts = {
        "case_study": CASE_STUDY,
        "praise": PRAISE,
        "complaint": COMPLAINTS,
        "feature_request": FEATURE_REQUESTS,
    }[kind]
    return {"kind": kind, "text": rng.choice(texts)}


def _renewals(deal: Deal, planned: list[Step], now: datetime) -> list[Step]:
    """A renewal at each contract end before `now` (unless churned), at the MRR then."""
    churned = min((s.at for s in planned if s.kind == "churn"), default=None)
    upsells = [s for s in planned if s.kind == "upsell"]
    steps: list[Step] = []
    ends = add_months(deal.contract_start, deal.term_months)
    while (at := datetime.combine(ends, time(10), UTC) - timedelta(days=3)) < now:
        if churned is not None and churned <= at:
            break
        mrr = deal.mrr + sum(int(s.body["mrr_delta"]) for s in upsells if s.at < at)
        steps.append(Step(at, "renewal", {"mrr": mrr, "term_months": deal.term_months}))
        ends = add_months(ends, deal.term_months)
    return steps
