"""Plays a plan against the running services, lead by lead, a bounded number at a time.

Each lead runs its steps in order and without pauses: after a hand-off the driver polls the next
department until the lead is there and writes its follow-up at once, well within the grace the
services' SLA sweeps give a freshly received hand-off (`BATON_SWEEP_GRACE_S`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson

from baton.simulate.http import AccountFinder, Services, SimulationError, problem
from baton.simulate.plan import Plan
from baton.simulate.script import LeadScript, Step

MAX_ERRORS_KEPT = 20
IMPORT_ROWS = 2_000  # leads per import request
CS_WRITES = {  # step kind -> path under the account
    "usage": "usage",
    "nps": "nps",
    "upsell": "upsells",
    "renewal": "renewals",
    "churn": "churn",
    "feedback": "feedback",
}


@dataclass
class Tally:
    """What the services answered, counted as the simulation goes."""

    leads: int = 0
    already_loaded: int = 0  # leads whose email Marketing knew: not played again
    activities: int = 0
    mqls: int = 0
    first_touches: int = 0
    touched_in_time: int = 0
    touches: int = 0
    sqls: int = 0
    recycled: int = 0
    disqualified: int = 0
    won: int = 0
    lost: int = 0
    accounts: int = 0
    churn_risks: int = 0
    churned: int = 0
    upsells: int = 0
    renewals: int = 0
    nps: int = 0
    stalled: int = 0  # hand-offs that did not arrive within the timeout
    failed: int = 0  # leads stopped by an answer the plan did not expect
    done: int = 0  # leads finished (whatever the outcome)
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.failed += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


@dataclass
class _Lead:
    """What the driver learns about one lead along the way (ids come from the services)."""

    script: LeadScript
    lead_id: str
    qualified: bool = False  # Marketing's answer to the latest activity
    opportunity_id: str = ""
    account_id: str = ""
    checklist: list[str] = field(default_factory=list)
    ticked: int = 0

    def key(self, index: int) -> str:
        return f"{self.script.number}-{index}"


@dataclass(frozen=True)
class Outcome:
    tally: Tally
    seconds: float
    requests: int
    retries: int


class Driver:
    """Runs a plan's campaigns, team and leads through the departments' public APIs."""

    def __init__(
        self,
        plan: Plan,
        services: Services,
        *,
        response_time: timedelta = timedelta(hours=24),
        concurrency: int = 16,
        on_lead_done: Callable[[Tally], None] | None = None,
    ) -> None:
        self.plan = plan
        self.services = services
        self.response_time = response_time
        self.concurrency = concurrency
        self.on_lead_done = on_lead_done
        self.tally = Tally()
        self.campaign_ids: dict[str, str] = {}
        self.accounts = AccountFinder(services)

    async def run(self) -> Outcome:
        """Set up campaigns and reps, capture the leads, then play every journey."""
        started = time.perf_counter()
        await self.setup()
        lead_ids = await self.capture()
        pending = iter(self.plan.leads)

        async def worker() -> None:
            for script in pending:  # shared iterator: each lead goes to one worker
                if script.email in lead_ids:
                    await self.play(_Lead(script, lead_ids[script.email]))
                self.tally.done += 1
                if self.on_lead_done is not None:
                    self.on_lead_done(self.tally)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return Outcome(
            self.tally,
            time.perf_counter() - started,
            self.services.requests,
            self.services.retries,
        )

    async def setup(self) -> None:
        """Campaigns with their monthly costs, and the Inside Sales team."""
        for number, campaign in enumerate(self.plan.campaigns):
            body = {"name": campaign.name, "channel": campaign.channel}
            made = await self.services.post("marketing", "/v1/campaigns", body, f"c{number}")
            _expect(made.status_code == 201, "create a campaign", made)
            campaign_id = made.json()["id"]
            self.campaign_ids[campaign.channel] = campaign_id
            for month, (start, end, amount) in enumerate(campaign.costs):
                cost = {
                    "amount": amount,
                    "currency": "JPY",
                    "period_start": start.isoformat(),
                    "period_end": end.isoformat(),
                }
                path = f"/v1/campaigns/{campaign_id}/costs"
                paid = await self.services.post("marketing", path, cost, f"c{number}-{month}")
                _expect(paid.status_code == 201, "record a campaign cost", paid)
        for number, (name, email) in enumerate(self.plan.reps):
            body = {"name": name, "email": email}
            rep = await self.services.post("inside_sales", "/v1/reps", body, f"r{number}")
            _expect(rep.status_code in (201, 409), "add an inside sales rep", rep)  # 409: known

    async def capture(self) -> dict[str, str]:
        """Import the plan's new leads in bulk, as a marketing automation sync would.

        Leads whose email Marketing already knows (an earlier run of the same seed) are left
        out, and counted. Answers each new lead's id by email.
        """
        known = await self._lead_ids()
        rows = [
            self._capture_row(script.steps[0])
            for script in self.plan.leads
            if script.email not in known
        ]
        self.tally.already_loaded = len(self.plan.leads) - len(rows)
        for start in range(0, len(rows), IMPORT_ROWS):
            chunk = rows[start : start + IMPORT_ROWS]
            content = b"".join(orjson.dumps(row) + b"\n" for row in chunk)
            response = await self.services.send(
                "marketing",
                "POST",
                "/v1/leads/import",
                content=content,
                headers={"Content-Type": "application/x-ndjson"},
                key=f"import-{start}",
            )
            _expect(response.status_code == 200, "import leads", response)
            errors = response.json()["errors"]
            if errors:
                raise SimulationError(f"marketing refused imported leads: {errors[:3]}")
        found = await self._lead_ids()
        captured = {email: lead_id for email, lead_id in found.items() if email not in known}
        self.tally.leads = len(captured)
        return captured

    def _capture_row(self, step: Step) -> dict[str, Any]:
        assert step.kind == "capture"
        row = {k: v for k, v in step.body.items() if k != "campaign" and v is not None}
        campaign_id = self.campaign_ids.get(step.body.get("campaign") or "")
        if campaign_id:
            row["campaign_id"] = campaign_id
        row["occurred_at"] = step.at.isoformat()
        return row

    async def _lead_ids(self) -> dict[str, str]:
        """Email -> id of every lead Marketing holds from this plan's seed."""
        ids: dict[str, str] = {}
        params: dict[str, Any] = {"q": self.plan.email_tag, "limit": 200}
        while True:
            response = await self.services.get("marketing", "/v1/leads", params)
            _expect(response.status_code == 200, "list leads", response)
            page = response.json()
            ids.update((lead["email"], lead["id"]) for lead in page["items"])
            if page["next_cursor"] is None:
                return ids
            params["cursor"] = page["next_cursor"]

    async def play(self, lead: _Lead) -> None:
        """Run one captured lead's steps in order; stop it at the first unexpected answer."""
        for index, step in enumerate(lead.script.steps[1:], start=1):
            try:
                if not await self.step(lead, index, step):
                    return
            except SimulationError as exc:
                self.tally.error(f"lead {lead.script.number} {step.kind}: {exc}")
                return

    async def step(self, lead: _Lead, index: int, step: Step) -> bool:
        """Do one step; False stops the lead (the reason is counted)."""
        if step.kind in ("activity", "await_recycled"):
            return await self._marketing(lead, index, step)
        if step.kind in ("await_mql", "touch", "qualify", "recycle", "disqualify"):
            return await self._inside_sales(lead, index, step)
        if step.kind in ("await_opportunity", "accept", "stage", "win", "lose"):
            return await self._field_sales(lead, index, step)
        return await self._customer_success(lead, index, step)

    async def _write(
        self, service: str, path: str, lead: _Lead, key: str, step: Step
    ) -> dict[str, Any] | None:
        """POST the step's body (with its event time); None (and counted) when refused."""
        body = {**step.body, "occurred_at": step.at.isoformat()}
        response = await self.services.post(service, path, body, key)
        if response.status_code in (200, 201, 202):
            return dict(response.json())
        self.tally.error(f"lead {lead.script.number} {step.kind}: {problem(response)}")
        return None

    async def _marketing(self, lead: _Lead, index: int, step: Step) -> bool:
        if step.kind == "await_recycled":  # Marketing hears of it through the broker
            path = f"/v1/leads/{lead.lead_id}"
            return await self._arrived(
                "marketing", path, lambda found: found["status"] == "recycled"
            )
        path = f"/v1/leads/{lead.lead_id}/activities"
        result = await self._write("marketing", path, lead, lead.key(index), step)
        if result is None:
            return False
        self.tally.activities += 1
        lead.qualified = bool(result["qualified"])
        self.tally.mqls += lead.qualified
        return True

    async def _arrived(self, service: str, path: str, ready: Callable[[Any], bool]) -> bool:
        if await self.services.wait_for(service, path, ready) is None:
            self.tally.stalled += 1
            return False
        return True

    async def _inside_sales(self, lead: _Lead, index: int, step: Step) -> bool:
        base = f"/v1/leads/{lead.lead_id}"
        if step.kind == "await_mql":
            if not lead.qualified:
                self.tally.error(f"lead {lead.script.number}: Marketing did not qualify it")
                return False
            lead.qualified = False
            return await self._arrived("inside_sales", base, lambda found: found["status"] == "new")
        path = base + ("/touches" if step.kind == "touch" else f"/{step.kind}")
        result = await self._write("inside_sales", path, lead, lead.key(index), step)
        if result is None:
            return False
        if step.kind == "touch":
            self.tally.touches += 1
            if result["first_contact"]:
                self.tally.first_touches += 1
                seconds = result["response_seconds"] or 0
                self.tally.touched_in_time += seconds <= self.response_time.total_seconds()
        elif step.kind == "qualify":
            self.tally.sqls += 1
            lead.opportunity_id = result["opportunity_id"]
        elif step.kind == "recycle":
            self.tally.recycled += 1
        else:
            self.tally.disqualified += 1
        return True

    async def _field_sales(self, lead: _Lead, index: int, step: Step) -> bool:
        path = f"/v1/opportunities/{lead.opportunity_id}"
        if step.kind == "await_opportunity":
            return await self._arrived("field_sales", path, lambda found: True)
        path = f"{path}/{step.kind}"
        if await self._write("field_sales", path, lead, lead.key(index), step) is None:
            return False
        self.tally.won += step.kind == "win"
        self.tally.lost += step.kind == "lose"
        return True

    async def _customer_success(self, lead: _Lead, index: int, step: Step) -> bool:
        if step.kind == "await_account":
            return await self._find_account(lead, str(step.body["owner_id"]))
        base = f"/v1/accounts/{lead.account_id}"
        if step.kind == "onboarding":
            return await self._onboard(lead, index, step)
        path = f"{base}/{CS_WRITES[step.kind]}"
        result = await self._write("customer_success", path, lead, lead.key(index), step)
        if result is None:
            return False
        if step.kind == "usage":
            self.tally.churn_risks += bool(result["churn_risk"])
        self.tally.churned += step.kind == "churn"
        self.tally.upsells += step.kind == "upsell"
        self.tally.renewals += step.kind == "renewal"
        self.tally.nps += step.kind == "nps"
        return True

    async def _find_account(self, lead: _Lead, owner_id: str) -> bool:
        account = await self.accounts.find(lead.opportunity_id, owner_id)
        if account is None:
            self.tally.stalled += 1
            return False
        lead.account_id = account["id"]
        detail = await self.services.get("customer_success", f"/v1/accounts/{lead.account_id}")
        _expect(detail.status_code == 200, "read an account", detail)
        lead.checklist = list(detail.json()["onboarding"])
        self.tally.accounts += 1
        return True

    async def _onboard(self, lead: _Lead, index: int, step: Step) -> bool:
        """Tick the checklist in order: one item per planned step, the rest on the last one."""
        last = bool(step.body["last"])
        count = len(lead.checklist) - lead.ticked if last else 1
        if not last and lead.ticked >= len(lead.checklist) - 1:
            return True  # a short checklist: its last item waits for the last planned step
        for offset in range(count):
            item = lead.checklist[lead.ticked]
            path = f"/v1/accounts/{lead.account_id}/onboarding/{item}"
            plain = Step(step.at, step.kind, {})
            key = f"{lead.key(index)}-{offset}"
            if await self._write("customer_success", path, lead, key, plain) is None:
                return False
            lead.ticked += 1
        return True


def _expect(ok: bool, what: str, response: httpx.Response) -> None:
    if not ok:
        raise SimulationError(f"cannot {what}: {problem(response)}")
