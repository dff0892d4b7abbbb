"""Scenario presets of `baton simulate`: the shape of a funnel, as data.

The two presets follow the case figures of the source article (see the README): company A's SQL
conversion rose from 13% to 25% after splitting the roles, company B's lead handling (MQLs first
touched within the SLA) from 40% to 88% with weekly baton meetings while customer contacts
doubled, and company C's upsell rate tripled with an independent, usage-scoring CS team. The other
figures (win rate, neglect, churn) are assumptions of the same direction, not quoted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SOURCE_WEIGHTS: dict[str, float] = {
    "ads": 0.22,
    "seo": 0.18,
    "content": 0.17,
    "webinar": 0.14,
    "seminar": 0.08,
    "event": 0.09,
    "referral": 0.07,
    "other": 0.05,
}
# How much likelier a lead of each source becomes an MQL than the average lead.
SOURCE_MQL_LIFT: dict[str, float] = {
    "referral": 1.6,
    "webinar": 1.3,
    "seminar": 1.3,
    "event": 1.0,
    "content": 0.9,
    "seo": 0.8,
    "ads": 0.7,
    "other": 0.6,
}


@dataclass(frozen=True)
class Scenario:
    """Rates and timings that shape a simulated funnel, department by department."""

    name: str
    description: str
    source_weights: Mapping[str, float] = field(default_factory=lambda: dict(SOURCE_WEIGHTS))
    # Marketing: the share of captured leads nurtured over the MQL line.
    mql_rate: float = 0.30
    # Inside Sales: MQLs first touched within the response SLA (the "lead handling rate")...
    handled_within_sla: float = 0.88
    # ...of the others, the share nobody ever touches (the rest are touched late).
    never_touched: float = 0.3
    touches: tuple[int, int] = (2, 4)  # per contacted MQL, inclusive
    sql_rate: float = 0.25  # MQLs qualified as opportunities
    recycle_share: float = 0.6  # of the MQLs not qualified: recycled (the rest disqualified)
    requalify_rate: float = 0.3  # of the recycled: nurtured back over the MQL line once more
    # Field Sales
    accepted_within_sla: float = 0.95
    win_rate: float = 0.30  # won / (won + lost)
    sales_cycle_days: tuple[int, int] = (14, 60)
    # Customer Success: accounts whose usage drifts into red, and of those, the share that churn.
    drift_to_red: float = 0.15
    churn_when_red: float = 0.35
    upsell_rate: float = 0.24  # accounts that buy more within the window

    @property
    def touched_share(self) -> float:
        """The share of MQLs that get at least one touch."""
        return 1 - (1 - self.handled_within_sla) * self.never_touched


THE_MODEL = Scenario(
    name="the-model",
    description="roles split, SLAs kept in weekly baton meetings, CS scoring usage",
)
BEFORE_THE_MODEL = Scenario(
    name="before-the-model",
    description="one sales team doing everything, no written hand-offs",
    handled_within_sla=0.40,
    never_touched=0.5,
    touches=(1, 2),
    sql_rate=0.13,
    accepted_within_sla=0.70,
    win_rate=0.20,
    sales_cycle_days=(21, 90),
    drift_to_red=0.35,
    churn_when_red=0.60,
    upsell_rate=0.08,
)
SCENARIOS: dict[str, Scenario] = {s.name: s for s in (THE_MODEL, BEFORE_THE_MODEL)}
