"""The funnel a plan describes, counted from its steps (pure), to compare with what loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from baton.simulate.plan import Plan

# Inside Sales settles an MQL (verdict, or left untouched for good) well within this time.
SETTLED_AFTER = timedelta(days=30)


@dataclass
class _Round:
    """One hand-off of a lead to Inside Sales."""

    mql_at: datetime
    first_touch_at: datetime | None = None
    qualified: bool = False


@dataclass(frozen=True)
class PlannedFunnel:
    leads: int
    mqls: int  # hand-offs to Inside Sales (a lead recycled and qualified again counts twice)
    touched_in_time: int  # MQLs first touched within the response SLA
    sla_due: int  # MQLs whose response SLA ran out by the plan's now (or that were touched)
    settled: int  # MQLs handed over at least SETTLED_AFTER before the plan's now...
    settled_sqls: int  # ...and those of them that became opportunities
    sqls: int
    won: int
    lost: int
    churned: int
    upsells: int
    renewals: int

    @property
    def handling_rate(self) -> float | None:
        """MQLs first touched within the SLA / MQLs due (the KPI's lead handling rate)."""
        return self.touched_in_time / self.sla_due if self.sla_due else None

    @property
    def sql_rate(self) -> float | None:
        """Opportunities / MQLs, over MQLs old enough to have been worked."""
        return self.settled_sqls / self.settled if self.settled else None

    @property
    def win_rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None


def _rounds(plan: Plan) -> list[_Round]:
    rounds: list[_Round] = []
    for lead in plan.leads:
        current: _Round | None = None
        for step in lead.steps:
            if step.kind == "await_mql":
                current = _Round(step.at)
                rounds.append(current)
            elif current is not None and step.kind == "touch" and current.first_touch_at is None:
                current.first_touch_at = step.at
            elif current is not None and step.kind == "qualify":
                current.qualified = True
    return rounds


def planned_funnel(plan: Plan, response_time: timedelta = timedelta(hours=24)) -> PlannedFunnel:
    """Count the plan's funnel; rates only over what has had time to happen by `plan.now`."""
    rounds = _rounds(plan)
    due = [r for r in rounds if r.mql_at + response_time < plan.now or r.first_touch_at]
    settled = [r for r in rounds if r.mql_at + SETTLED_AFTER < plan.now]
    return PlannedFunnel(
        leads=plan.count("capture"),
        mqls=len(rounds),
        touched_in_time=sum(
            1 for r in due if r.first_touch_at and r.first_touch_at - r.mql_at <= response_time
        ),
        sla_due=len(due),
        settled=len(settled),
        settled_sqls=sum(1 for r in settled if r.qualified),
        sqls=plan.count("qualify"),
        won=plan.count("win"),
        lost=plan.count("lose"),
        churned=plan.count("churn"),
        upsells=plan.count("upsell"),
        renewals=plan.count("renewal"),
    )
