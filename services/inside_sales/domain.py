"""Inside Sales rules, free of I/O: the response SLA, the SQL criteria, round-robin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Criterion = Literal["need", "decision_maker", "budget", "timeline"]
CRITERIA: tuple[Criterion, ...] = ("need", "decision_maker", "budget", "timeline")
OPEN = ("new", "contacted")  # a lead still being worked


@dataclass(frozen=True)
class SlaPolicy:
    """What Inside Sales promises: first contact within `response_time`; when an MQL is an SQL."""

    response_time: timedelta = timedelta(hours=24)
    sql_criteria: tuple[Criterion, ...] = ("need", "decision_maker")

    def respond_by(self, qualified_at: datetime) -> datetime:
        """When the first contact with an MQL is due."""
        return qualified_at + self.response_time

    def unmet(self, answers: Mapping[str, object]) -> list[Criterion]:
        """The required criteria the qualification answers leave open."""
        return [c for c in self.sql_criteria if not _identified(answers.get(c))]


def _identified(value: object) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    return value is not None and value is not False


def respond_by(qualified_at: datetime, sla: timedelta = timedelta(hours=24)) -> datetime:
    return SlaPolicy(response_time=sla).respond_by(qualified_at)


def is_late(respond_by: datetime, first_contact_at: datetime | None, now: datetime) -> bool:
    """Breached in event time: contacted after the deadline, or not contacted and it has passed."""
    if first_contact_at is not None:
        return first_contact_at > respond_by
    return now > respond_by


@dataclass(frozen=True)
class RepTurn:
    rep_id: str
    last_turn: int  # the assignment sequence number of this rep's latest lead (0: none yet)


def next_rep(reps: Sequence[RepTurn]) -> str | None:
    """Round-robin: the active rep whose last turn is the oldest (ties by id); None if nobody."""
    if not reps:
        return None
    return min(reps, key=lambda r: (r.last_turn, r.rep_id)).rep_id
