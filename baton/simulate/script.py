"""What a simulated lead goes through: its steps, each a write (or a wait) at an event time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

StepKind = Literal[
    # marketing
    "capture",
    "activity",
    "await_recycled",
    # inside sales
    "await_mql",
    "touch",
    "qualify",
    "recycle",
    "disqualify",
    # field sales
    "await_opportunity",
    "accept",
    "stage",
    "win",
    "lose",
    # customer success
    "await_account",
    "onboarding",
    "usage",
    "nps",
    "upsell",
    "renewal",
    "churn",
    "feedback",
]
WAITS: frozenset[str] = frozenset(
    {"await_recycled", "await_mql", "await_opportunity", "await_account"}
)


@dataclass(frozen=True)
class Step:
    """One thing that happens to a lead at `at` (event time); `body` is the request, less ids.

    `await_*` steps write nothing: the driver waits there until the hand-off has crossed the
    broker and the next department holds the lead (or Marketing got it back).
    """

    at: datetime
    kind: StepKind
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LeadScript:
    """A lead's whole journey, in causal (and event-time) order."""

    number: int
    email: str
    steps: tuple[Step, ...]

    def count(self, kind: StepKind) -> int:
        return sum(1 for step in self.steps if step.kind == kind)
