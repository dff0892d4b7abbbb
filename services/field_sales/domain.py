"""Field Sales rules, free of I/O: the stage machine, the acceptance SLA, the forecast."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

OPEN_STAGES = ("qualification", "proposal", "quote", "approval", "negotiation")
CLOSED_STAGES = ("won", "lost")
DEFAULT_PROBABILITIES: dict[str, int] = {
    "qualification": 10,
    "proposal": 25,
    "quote": 50,
    "approval": 70,  # the customer's internal approval (ringi)
    "negotiation": 85,
    "won": 100,
    "lost": 0,
}
DEFAULT_LOSS_REASONS = ("price", "competitor", "no_decision", "timing", "no_budget", "other")


class IllegalMove(Exception):
    """A stage change the machine does not allow (-> 409)."""


@dataclass(frozen=True)
class SalesPolicy:
    accept_within: timedelta = timedelta(hours=48)
    probabilities: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PROBABILITIES))
    loss_reasons: tuple[str, ...] = DEFAULT_LOSS_REASONS

    def accept_by(self, created_at: datetime) -> datetime:
        return created_at + self.accept_within


def check_move(current: str, target: str, *, accepted: bool) -> None:
    """Raise IllegalMove unless an opportunity in `current` may go to `target`."""
    if current in CLOSED_STAGES:
        raise IllegalMove(f"the opportunity is {current}; a closed deal does not move")
    if not accepted:
        raise IllegalMove("accept the opportunity (name its owner) before working it")
    if target not in OPEN_STAGES + CLOSED_STAGES:
        raise IllegalMove(f"unknown stage {target!r}")
    if target == current:
        raise IllegalMove(f"the opportunity is already in {current}")


@dataclass(frozen=True)
class OpenDeal:
    stage: str
    owner_id: str | None
    amount: int
    probability: int
    expected_close: date | None


@dataclass
class Bucket:
    count: int = 0
    amount: int = 0
    weighted_amount: float = 0.0

    def add(self, deal: OpenDeal) -> None:
        self.count += 1
        self.amount += deal.amount
        self.weighted_amount += deal.amount * deal.probability / 100


@dataclass
class Forecast:
    by_stage: dict[str, Bucket]
    by_owner: dict[str, Bucket]
    by_close_month: dict[str, Bucket]
    total: Bucket


def forecast(deals: Iterable[OpenDeal]) -> Forecast:
    """Count, amount and probability-weighted amount per stage, per owner, per expected month."""
    by_stage: dict[str, Bucket] = {stage: Bucket() for stage in OPEN_STAGES}
    by_owner: dict[str, Bucket] = defaultdict(Bucket)
    by_month: dict[str, Bucket] = defaultdict(Bucket)
    total = Bucket()
    for deal in deals:
        by_stage[deal.stage].add(deal)
        by_owner[deal.owner_id or "unassigned"].add(deal)
        month = deal.expected_close.strftime("%Y-%m") if deal.expected_close else "unscheduled"
        by_month[month].add(deal)
        total.add(deal)
    return Forecast(by_stage, dict(by_owner), dict(sorted(by_month.items())), total)
