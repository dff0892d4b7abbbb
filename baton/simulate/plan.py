"""From a seed and a scenario to every lead's script (pure: no I/O, no clock, no global random).

Times are laid out backwards from `now`: leads are captured over the last `months`, each journey
runs forward from its capture, and whatever would happen at or after `now` is left out (those
leads are still being worked). Marketing's scoring model decides when a lead becomes an MQL and
Customer Success's health model when an account turns red; the plan is made with the models the
services run (`Policies`), so that the planned MQLs and churn risks are the ones the services see.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from baton.simulate import customers
from baton.simulate.people import Person, person
from baton.simulate.scenarios import SOURCE_MQL_LIFT, Scenario
from baton.simulate.script import LeadScript, Step, StepKind
from services.customer_success.domain import HealthModel
from services.marketing.domain import Activity, ScoringModel, score

DAYS_PER_MONTH = 30.44
MAX_ACTIVITIES = 12
CURRENCY = "JPY"
FIELD_TEAM = 6
INSIDE_TEAM = (
    ("Haruka Sato", "haruka.sato"),
    ("Daniel Okafor", "daniel.okafor"),
    ("Yuki Tanaka", "yuki.tanaka"),
    ("Maria Costa", "maria.costa"),
    ("Kenji Ito", "kenji.ito"),
)
CAMPAIGNS = {  # channel -> (name, monthly cost in yen)
    "ads": ("Search and social ads", 900_000),
    "content": ("Playbook e-book series", 250_000),
    "webinar": ("Monthly webinar: The Model in practice", 350_000),
    "seminar": ("Executive seminar Tokyo", 600_000),
    "event": ("SaaS Expo booth", 1_200_000),
}
HOT = {  # activities of a lead warming up, with weights
    "content_download": 3,
    "webinar_attended": 3,
    "pricing_page_view": 3,
    "email_click": 1,
    "form_submit": 1,
    "seminar_attended": 1,
    "demo_request": 1,
}
COLD = {
    "page_view": 6,
    "email_open": 6,
    "email_click": 2,
    "content_download": 1,
    "form_submit": 1,
    "unsubscribe": 0.3,
}
# Most leads that never warm up do little: a page view or a mail opened, or nothing at all.
COLD_COUNTS, COLD_COUNT_WEIGHTS = (0, 1, 2, 3, 4, 6), (30, 30, 18, 10, 7, 5)
FIRST_ACTIVITY = {
    "webinar": "webinar_attended",
    "seminar": "seminar_attended",
    "content": "content_download",
    "event": "form_submit",
    "referral": "form_submit",
}
NEEDS = (
    "pipeline visibility across teams",
    "faster response to inbound leads",
    "replace spreadsheets for forecasting",
    "reduce churn in the SMB segment",
    "one view of the customer from lead to renewal",
)
DECISION_MAKERS = ("CEO", "CIO", "VP Sales", "Head of Marketing", "COO", "Board")
TIMELINES = ("this quarter", "next quarter", "within 6 months", "next fiscal year")
LOSS_WEIGHTS = {
    "price": 3,
    "competitor": 3,
    "no_decision": 2,
    "timing": 2,
    "no_budget": 1,
    "other": 1,
}
TERMS = {3: 0.15, 6: 0.25, 12: 0.5, 24: 0.1}


@dataclass(frozen=True)
class Policies:
    """The departments' rules the plan is timed against (read from the running services)."""

    scoring: ScoringModel = field(default_factory=ScoringModel)
    response_time: timedelta = timedelta(hours=24)
    accept_within: timedelta = timedelta(hours=48)
    loss_reasons: tuple[str, ...] = tuple(LOSS_WEIGHTS)
    health: HealthModel = field(default_factory=HealthModel)


@dataclass(frozen=True)
class CampaignPlan:
    channel: str
    name: str
    costs: tuple[tuple[date, date, int], ...]  # (period start, period end, yen)


@dataclass(frozen=True)
class Plan:
    """Everything a simulation will write, and when."""

    seed: int
    scenario: str
    now: datetime
    campaigns: tuple[CampaignPlan, ...]
    reps: tuple[tuple[str, str], ...]  # Inside Sales reps: (name, email)
    leads: tuple[LeadScript, ...]

    @property
    def email_tag(self) -> str:
        """A piece of every email of this seed's leads (and of no other seed's)."""
        return email_tag(self.seed)

    def count(self, kind: StepKind) -> int:
        """How many steps of `kind` the whole plan holds."""
        return sum(lead.count(kind) for lead in self.leads)

    def steps(self) -> Iterator[Step]:
        return itertools.chain.from_iterable(lead.steps for lead in self.leads)


def email_tag(seed: int) -> str:
    return f".s{seed}n"


def make_plan(
    *,
    seed: int,
    scenario: Scenario,
    leads: int,
    months: float,
    now: datetime,
    policies: Policies | None = None,
) -> Plan:
    """The same arguments always give the same plan."""
    policies = policies or Policies()
    rng = random.Random(seed)
    start = now - timedelta(days=months * DAYS_PER_MONTH)
    span = (now - start) - timedelta(hours=1)
    captured = sorted(start + span * rng.random() for _ in range(leads))
    owners = tuple(str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(FIELD_TEAM))
    scripts = []
    for number, at in enumerate(captured):
        journey = Journey(random.Random(f"{seed}:{number}"), scenario, policies, owners, now)
        scripts.append(journey.lead(number, f"{email_tag(seed)[1:]}{number}", at))
    return Plan(
        seed=seed,
        scenario=scenario.name,
        now=now,
        campaigns=_campaigns(start, now),
        reps=tuple((name, f"{handle}@inside.baton-sim.example") for name, handle in INSIDE_TEAM),
        leads=tuple(scripts),
    )


def _campaigns(start: datetime, now: datetime) -> tuple[CampaignPlan, ...]:
    """A cost per campaign per calendar month of the window (the current month so far)."""
    months: list[tuple[date, date]] = []
    first = start.date().replace(day=1)
    while first <= now.date():
        following = customers.add_months(first, 1)
        months.append((max(first, start.date()), min(following - timedelta(days=1), now.date())))
        first = following
    plans = []
    for channel, (name, monthly) in CAMPAIGNS.items():
        costs = tuple(
            (begin, end, int(round(monthly * ((end - begin).days + 1) / 30, -3)))
            for begin, end in months
        )
        plans.append(CampaignPlan(channel, name, costs))
    return tuple(plans)


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _days(rng: random.Random, mean: float, least: float = 0.05) -> timedelta:
    return timedelta(days=max(least, rng.expovariate(1 / mean)))


class Journey:
    """Builds one lead's steps department by department, keeping event time moving forward."""

    def __init__(
        self,
        rng: random.Random,
        scenario: Scenario,
        policies: Policies,
        owners: tuple[str, ...],
        now: datetime,
    ) -> None:
        self.rng = rng
        self.scenario = scenario
        self.policies = policies
        self.owners = owners
        self.now = now
        self.steps: list[Step] = []

    def add(self, at: datetime, kind: StepKind, **body: object) -> None:
        self.steps.append(Step(at, kind, body))

    def lead(self, number: int, serial: str, captured_at: datetime) -> LeadScript:
        """The whole journey of lead `number`, cut at `now`."""
        rng, scenario = self.rng, self.scenario
        source = _pick(rng, dict(scenario.source_weights))
        who = person(rng, serial)
        self.add(
            captured_at,
            "capture",
            email=who.email,
            name=who.name,
            company=who.company,
            title=who.title,
            source=source,
            campaign=source if source in CAMPAIGNS else None,
        )
        lifts = scenario.source_weights
        mean_lift = sum(w * SOURCE_MQL_LIFT.get(s, 1.0) for s, w in lifts.items()) / sum(
            lifts.values()
        )
        p_mql = min(1.0, scenario.mql_rate * SOURCE_MQL_LIFT.get(source, 1.0) / mean_lift)
        mql_at = self.nurture(who, captured_at, warm=rng.random() < p_mql, first=source)
        for round_ in (1, 2):
            if mql_at is None:
                break
            outcome, at = self.inside_sales(mql_at, round_)
            mql_at = None
            if outcome == "recycled" and round_ == 1 and rng.random() < scenario.requalify_rate:
                self.add(at, "await_recycled")
                back = at + timedelta(days=rng.uniform(14, 45))
                mql_at = self.nurture(who, back, warm=True, first=None)
            elif outcome == "sql":
                self.field_sales(at)
        kept = tuple(itertools.takewhile(lambda step: step.at < self.now, self.steps))
        return LeadScript(number=number, email=who.email, steps=kept)

    def nurture(
        self, who: Person, since: datetime, *, warm: bool, first: str | None
    ) -> datetime | None:
        """Engagement from `since`: a warm lead until it crosses the MQL line (its time)."""
        rng, model = self.rng, self.policies.scoring
        wanted = MAX_ACTIVITIES if warm else rng.choices(COLD_COUNTS, COLD_COUNT_WEIGHTS)[0]
        history: list[Activity] = []
        at = since
        for index in range(wanted):
            kind = FIRST_ACTIVITY.get(first or "") if index == 0 else None
            kind = kind or _pick(rng, HOT if warm else COLD)
            at += (
                timedelta(hours=rng.uniform(0.2, 8)) if index == 0 else _days(rng, 3 if warm else 9)
            )
            trial = [*history, Activity(kind, at)]
            crosses = score(model, who.title, who.company, trial).is_mql(model)
            if crosses and not warm:
                return None  # a cold lead stays below the line
            history = trial
            self.add(at, "activity", type=kind)
            if crosses:
                return at
        return None

    def inside_sales(self, mql_at: datetime, round_: int) -> tuple[str, datetime]:
        """Touches and a verdict on an MQL: ("sql" | "recycled" | "disqualified" | "untouched")."""
        rng, scenario = self.rng, self.scenario
        sla = self.policies.response_time
        self.add(mql_at, "await_mql", round=round_)
        if rng.random() < scenario.handled_within_sla:
            at = mql_at + sla * rng.uniform(0.01, 0.85)
        elif rng.random() < scenario.never_touched:
            return "untouched", mql_at
        else:
            at = mql_at + sla * rng.uniform(1.1, 4.0)
        for index in range(rng.randint(*scenario.touches)):
            if index:
                at += _days(rng, 2, least=0.04)
            channels = ("call", "email", "meeting") if index else ("call", "email")
            outcome = _pick(
                rng,
                {"connected": 5, "no_answer": 2, "voicemail": 2, "replied": 2, "bounced": 0.3},
            )
            self.add(at, "touch", channel=rng.choice(channels), outcome=outcome)
        at += timedelta(hours=rng.uniform(1, 72))
        if rng.random() < scenario.sql_rate / scenario.touched_share:
            self.add(at, "qualify", **self.qualification())
            return "sql", at
        if rng.random() < scenario.recycle_share:
            self.add(at, "recycle", reason=rng.choice(("not now", "no budget this year")))
            return "recycled", at
        reason = rng.choice(("no fit", "student", "competitor", "duplicate contact"))
        self.add(at, "disqualify", reason=reason)
        return "disqualified", at

    def qualification(self) -> dict[str, object]:
        """What the hearing found: every criterion an SLA may require is answered."""
        rng = self.rng
        amount = int(round(rng.lognormvariate(math.log(3_600_000), 0.6), -4))
        return {
            "need": rng.choice(NEEDS),
            "decision_maker": rng.choice(DECISION_MAKERS),
            "budget": int(round(amount * rng.uniform(0.8, 1.3), -4)),
            "timeline": rng.choice(TIMELINES),
            "estimated_amount": amount,
            "currency": CURRENCY,
        }

    def field_sales(self, created_at: datetime) -> None:
        """Acceptance, the stages, and a win (then the customer's life) or a loss."""
        rng, scenario = self.rng, self.scenario
        estimate = int(self.steps[-1].body["estimated_amount"])
        self.add(created_at, "await_opportunity")
        window = self.policies.accept_within
        on_time = rng.random() < scenario.accepted_within_sla
        at = created_at + window * (rng.uniform(0.02, 0.8) if on_time else rng.uniform(1.1, 3.0))
        owner = rng.choice(self.owners)
        self.add(at, "accept", owner_id=owner)
        cycle = timedelta(days=rng.uniform(*scenario.sales_cycle_days))
        expected_close = (at + cycle * rng.uniform(0.8, 1.2)).date().isoformat()
        won = rng.random() < scenario.win_rate
        stages = ("proposal", "quote", "approval", "negotiation")
        moves = stages if won else stages[: rng.randint(0, 3)]
        amount = estimate
        for index, stage in enumerate(moves, start=1):
            if stage == "quote":
                amount = int(round(estimate * rng.uniform(0.85, 1.15), -4))
            step_at = at + cycle * (index / (len(stages) + 1)) * rng.uniform(0.9, 1.1)
            self.add(step_at, "stage", stage=stage, amount=amount, expected_close=expected_close)
        closed_at = at + cycle
        if not won:
            reasons = self.policies.loss_reasons
            weights = [LOSS_WEIGHTS.get(r, 1) for r in reasons]
            self.add(closed_at, "lose", reason=rng.choices(reasons, weights)[0])
            return
        term = rng.choices(list(TERMS), list(TERMS.values()))[0]
        mrr = max(1_000, int(round(amount / 12, -3)))
        contract_start = (closed_at + timedelta(days=rng.uniform(1, 14))).date()
        self.add(
            closed_at,
            "win",
            amount=mrr * term,
            mrr=mrr,
            term_months=term,
            contract_start=contract_start.isoformat(),
            currency=CURRENCY,
        )
        deal = customers.Deal(closed_at, contract_start, mrr, term, owner)
        health = self.policies.health
        self.steps.extend(customers.customer_steps(rng, scenario, deal, health, self.now))
