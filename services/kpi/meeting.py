"""The weekly baton meeting: every hand-off and every KPI, this week against the last."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi.facts import Rules
from services.kpi.formulas import DEPARTMENTS
from services.kpi.periods import Granularity, Period, label
from services.kpi.service import Scope, kpis, sla_compliance


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`: one row per figure."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def change(now: Any, before: Any) -> float | None:
    """now - before for two numbers; None when either is missing."""
    if isinstance(now, int | float) and isinstance(before, int | float):
        return round(now - before, 6)
    return None


async def baton_meeting(
    session: AsyncSession, rules: Rules, week: Period, now: datetime
) -> dict[str, Any]:
    """The report of `week` (an ISO week) with the change against the week before."""
    previous = Period(
        week.start - timedelta(days=7),
        week.start,
        label(week.start - timedelta(days=7), Granularity.week),
    )
    this_sla = await sla_compliance(session, rules, Scope(week.start, week.end), now)
    last_sla = await sla_compliance(session, rules, Scope(previous.start, previous.end), now)
    handoffs = [
        {
            "handoff": current["handoff"],
            "this_week": current,
            "previous_week": before,
            "change": {
                "passed": change(current["passed"], before["passed"]),
                "compliance_rate": change(current["compliance_rate"], before["compliance_rate"]),
            },
        }
        for current, before in zip(this_sla, last_sla, strict=True)
    ]
    report = await kpis(
        session, rules, Scope(previous.start, week.end), Granularity.week, DEPARTMENTS
    )
    before_kpis, this_kpis = (row["kpis"] for row in report["periods"])
    departments = {}
    for department in DEPARTMENTS:
        current, last = flatten(this_kpis[department]), flatten(before_kpis[department])
        departments[department] = [
            {
                "kpi": name,
                "this_week": value,
                "previous_week": last.get(name),
                "change": change(value, last.get(name)),
            }
            for name, value in current.items()
        ]
    return {
        "week": week.label,
        "start": week.start,
        "end": week.end,
        "previous_week": previous.label,
        "handoffs": handoffs,
        "kpis": departments,
    }
