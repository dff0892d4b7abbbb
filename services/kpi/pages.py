"""HTML pages of the KPI service: the printable baton-meeting report and the dashboard."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.kpi.schemas import BatonMeeting

TEMPLATES = Path(__file__).parent / "templates"
HANDOFF_NAMES = {
    "mql": "MQL: Marketing → Inside Sales",
    "sql": "SQL: Inside Sales → Field Sales",
    "deal": "Deal: Field Sales → Customer Success",
    "churn_risk": "Churn risk: Customer Success → Sales",
}
DEPARTMENT_NAMES = {
    "marketing": "Marketing",
    "inside_sales": "Inside Sales",
    "field_sales": "Field Sales",
    "customer_success": "Customer Success",
    "shared": "Shared",
}


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["figure"] = figure
    env.filters["signed"] = signed
    return env


def figure(value: Any, name: str = "") -> str:
    """A KPI value for people: rates as percentages, money and counts with separators."""
    if value is None:
        return "—"
    if isinstance(value, float) and (
        name.endswith(("_rate", "nrr"))
        or name.startswith("sla_")
        or ".sla_compliance" in name
        or name == "compliance_rate"
    ):
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}"


def signed(value: Any, name: str = "") -> str:
    if value is None:
        return ""
    text = figure(abs(value), name)
    return ("+" if value > 0 else "\u2212" if value < 0 else "±") + text


def render_meeting(report: BatonMeeting) -> str:
    """The baton-meeting report as a printable HTML page."""
    return (
        environment()
        .get_template("baton_meeting.html")
        .render(report=report, handoff_names=HANDOFF_NAMES, department_names=DEPARTMENT_NAMES)
    )


def render_dashboard() -> str:
    return environment().get_template("dashboard.html").render()
