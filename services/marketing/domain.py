"""Marketing rules, free of I/O: the scoring model, decay, and the MQL line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ACTIVITY_POINTS: dict[str, int] = {
    "page_view": 2,
    "pricing_page_view": 20,
    "content_download": 15,
    "email_open": 1,
    "email_click": 5,
    "form_submit": 10,
    "webinar_attended": 25,
    "seminar_attended": 25,
    "demo_request": 40,
    "unsubscribe": -50,
}


@dataclass(frozen=True)
class FitRule:
    """Points for who the lead is: `field` contains `contains` (case-insensitive)."""

    field: Literal["title", "company"]
    contains: str
    points: int

    def matches(self, title: str | None, company: str) -> bool:
        value = title if self.field == "title" else company
        return bool(value) and self.contains.casefold() in (value or "").casefold()

    @property
    def name(self) -> str:
        return f"{self.field} contains {self.contains!r}"


DEFAULT_FIT_RULES: tuple[FitRule, ...] = (
    FitRule("title", "chief", 15),
    FitRule("title", "director", 15),
    FitRule("title", "head", 15),
    FitRule("title", "manager", 10),
    FitRule("title", "student", -30),
    FitRule("company", "university", -20),
)


@dataclass(frozen=True)
class ScoringModel:
    """How a lead is scored and when it becomes an MQL (DESIGN §6)."""

    activity_points: Mapping[str, int] = field(default_factory=lambda: dict(ACTIVITY_POINTS))
    fit_rules: tuple[FitRule, ...] = DEFAULT_FIT_RULES
    # Engagement points start to fade after this many days without activity...
    decay_after_days: float = 30.0
    # ...and halve every this many days of inactivity beyond that.
    decay_half_life_days: float = 30.0
    mql_min_score: int = 80
    mql_min_touches: int = 3

    def points_for(self, activity: str) -> int:
        return self.activity_points.get(activity, 0)

    def fit(self, title: str | None, company: str) -> list[tuple[str, int]]:
        """The fit rules the lead matches, with their points."""
        return [(r.name, r.points) for r in self.fit_rules if r.matches(title, company)]

    def fit_points(self, title: str | None, company: str) -> int:
        """The points of the fit rules the lead matches: a new lead's whole score."""
        return sum(r.points for r in self.fit_rules if r.matches(title, company))

    def decay(self, points: float, idle_days: float) -> float:
        """Engagement points left after `idle_days` without activity."""
        faded_days = idle_days - self.decay_after_days
        if faded_days <= 0 or points == 0:
            return points
        return points * 0.5 ** (faded_days / self.decay_half_life_days)


@dataclass(frozen=True)
class Activity:
    type: str
    occurred_at: datetime


@dataclass(frozen=True)
class Score:
    """A lead's score as of its latest activity, with where the points came from."""

    total: int
    fit: int
    engagement: int
    touches: int
    last_activity_at: datetime | None
    fit_rules: tuple[tuple[str, int], ...]
    points_by_activity: Mapping[str, int]
    decayed: int

    def is_mql(self, model: ScoringModel) -> bool:
        return self.total >= model.mql_min_score and self.touches >= model.mql_min_touches


def score(
    model: ScoringModel,
    title: str | None,
    company: str,
    activities: Iterable[Activity],
    since: datetime | None = None,
) -> Score:
    """Fold the lead's activities in event-time order: backdated history scores like live traffic.

    Each activity first lets the engagement gathered so far decay over the idle time since the
    previous one, then adds its points. Positive activities count as touches. Activities before
    `since` (when the lead was last recycled) no longer count: engagement starts over.
    """
    fit_rules = tuple(model.fit(title, company))
    engagement = 0.0
    raw = 0
    touches = 0
    last: datetime | None = None
    by_activity: dict[str, int] = {}
    counted = [a for a in activities if since is None or a.occurred_at >= since]
    for activity in sorted(counted, key=lambda a: a.occurred_at):
        if last is not None:
            idle_days = (activity.occurred_at - last).total_seconds() / 86_400
            engagement = model.decay(engagement, idle_days)
        points = model.points_for(activity.type)
        engagement += points
        raw += points
        by_activity[activity.type] = by_activity.get(activity.type, 0) + points
        if points > 0:
            touches += 1
        last = activity.occurred_at
    fit_points = sum(points for _, points in fit_rules)
    engagement_points = round(engagement)
    return Score(
        total=fit_points + engagement_points,
        fit=fit_points,
        engagement=engagement_points,
        touches=touches,
        last_activity_at=last,
        fit_rules=fit_rules,
        points_by_activity=by_activity,
        decayed=engagement_points - raw,
    )


def can_qualify(status: str) -> bool:
    """A lead already handed over, or disqualified by Inside Sales, does not qualify (again)."""
    return status in ("new", "nurturing", "recycled")


def ratio(numerator: float, denominator: float) -> float | None:
    """A KPI-style ratio: None (not 0, not an error) when there is no denominator."""
    return numerator / denominator if denominator else None
