"""`baton simulate` against the four departments on a real broker: they hold what the plan says."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from baton.broker import EmbeddedBroker
from baton.simulate import simulate
from baton.simulate.demo import load_demo
from baton.simulate.http import DEPARTMENTS
from baton.simulate.plan import Plan
from baton.simulate.scenarios import THE_MODEL
from baton.simulate.script import LeadScript
from shared.auth import scopes_of
from tests.helpers import TEST_SECRET, eventually, make_settings, serve, token

# 30 leads of this seed reach every department: two customers (one churns), a lost deal, a
# recycled lead that qualifies again, MQLs touched late and one never touched.
SEED, LEADS, MONTHS = 194, 30, 6
GRACE_S = 10.0  # what the sweeps leave alone; the simulator's follow-ups come well within it
RESPONSE, ACCEPT = timedelta(hours=24), timedelta(hours=48)
VERDICTS = {"qualify": "qualified", "recycle": "recycled", "disqualify": "disqualified"}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def departments(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The four department services on SQLite, with fast SLA sweeps."""
    suffix = f"-{uuid.uuid4().hex[:6]}"
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name in DEPARTMENTS:
            settings = make_settings(
                name,
                database_url=f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}",
                bootstrap=broker.bootstrap,
                data_dir=tmp_path,
                sweep_interval_s=0.5,
                sweep_grace_s=GRACE_S,
                consumer_group_suffix=suffix,
            )
            app = importlib.import_module(f"services.{name}.app").create_app(settings)
            clients[name] = await stack.enter_async_context(serve(app))
        yield clients


def headers(service: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes_of(service))}"}


async def every(
    client: httpx.AsyncClient, service: str, path: str, **params: Any
) -> list[dict[str, Any]]:
    """All items of a paged list."""
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {**params, "limit": 200}
    while True:
        page = (await client.get(path, params=query, headers=headers(service))).json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        query["cursor"] = page["next_cursor"]


def marketing_status(lead: LeadScript) -> str:
    status = "new"
    for step in lead.steps:
        if step.kind == "activity" and status == "new":
            status = "nurturing"
        elif step.kind == "await_mql":
            status = "mql"
        elif step.kind in ("recycle", "disqualify"):
            status = VERDICTS[step.kind]
    return status


def last_round(lead: LeadScript) -> list[Any]:
    """The steps from the lead's latest hand-off to Inside Sales on."""
    starts = [i for i, step in enumerate(lead.steps) if step.kind == "await_mql"]
    return list(lead.steps[starts[-1] :]) if starts else []


def inside_sales_state(lead: LeadScript, now: datetime) -> tuple[str, bool]:
    """(queue status, response SLA breached) of the lead's latest hand-off."""
    steps = last_round(lead)
    mql_at = steps[0].at
    touches = [s for s in steps if s.kind == "touch"]
    verdicts = [VERDICTS[s.kind] for s in steps if s.kind in VERDICTS]
    status = verdicts[0] if verdicts else "contacted" if touches else "new"
    breached = touches[0].at - mql_at > RESPONSE if touches else mql_at + RESPONSE < now
    return status, breached


def neglected(lead: LeadScript, now: datetime) -> bool:
    created = next(s.at for s in lead.steps if s.kind == "await_opportunity")
    accepted = [s.at for s in lead.steps if s.kind == "accept"]
    return accepted[0] - created > ACCEPT if accepted else created + ACCEPT < now


def outcome(lead: LeadScript) -> str:
    kinds = {s.kind for s in lead.steps}
    return "won" if "win" in kinds else "lost" if "lose" in kinds else "open"


async def test_the_departments_hold_what_the_plan_says(
    departments: dict[str, httpx.AsyncClient], tmp_path: Path
) -> None:
    urls = {name: str(client.base_url).rstrip("/") for name, client in departments.items()}
    tokens = {name: token(*scopes_of(name)) for name in DEPARTMENTS}
    result = await simulate(
        urls, tokens, scenario=THE_MODEL, leads=LEADS, months=MONTHS, seed=SEED, concurrency=8
    )
    plan, tally = result.plan, result.outcome.tally
    assert (tally.failed, tally.stalled, tally.errors) == (0, 0, [])
    assert plan.count("win") >= 2 and plan.count("churn") >= 1 and plan.count("lose") >= 1
    assert plan.count("await_recycled") >= 1
    assert (tally.leads, tally.mqls, tally.sqls) == (
        LEADS,
        plan.count("await_mql"),
        plan.count("qualify"),
    )
    assert (tally.won, tally.lost, tally.churned) == (
        plan.count("win"),
        plan.count("lose"),
        plan.count("churn"),
    )
    ids = await check_marketing(departments["marketing"], plan)
    await check_inside_sales(departments["inside_sales"], plan, ids)
    await check_field_sales(departments["field_sales"], plan, ids)
    await check_customer_success(departments["customer_success"], plan, ids)

    again = await simulate(urls, tokens, scenario=THE_MODEL, leads=LEADS, months=MONTHS, seed=SEED)
    assert again.plan.leads[0].email == plan.leads[0].email  # same seed, same leads
    assert (again.outcome.tally.leads, again.outcome.tally.already_loaded) == (0, LEADS)
    assert again.outcome.tally.activities == 0

    # `baton up` loads no demo data where there are leads already; it says so in the data dir.
    ports = {name: client.base_url.port or 0 for name, client in departments.items()}
    out = io.StringIO()
    await asyncio.to_thread(load_demo, tmp_path, ports, TEST_SECRET, Console(file=out))
    assert (tmp_path / "demo-loaded").read_text().startswith("data found")
    assert "Loading demo data" not in out.getvalue()
    leads = await every(departments["marketing"], "marketing", "/v1/leads", q="@")
    assert len([lead for lead in leads if plan.email_tag in lead["email"]]) == LEADS


async def check_marketing(client: httpx.AsyncClient, plan: Plan) -> dict[str, str]:
    """Every lead, captured at its planned time; statuses follow Inside Sales' verdicts."""
    leads = await every(client, "marketing", "/v1/leads", q=plan.email_tag)
    by_email = {lead["email"]: lead for lead in leads}
    assert sorted(by_email) == sorted(script.email for script in plan.leads)
    for script in plan.leads:
        captured = datetime.fromisoformat(by_email[script.email]["captured_at"])
        assert captured == script.steps[0].at
    wanted = {script.email: marketing_status(script) for script in plan.leads}

    async def statuses() -> bool:
        found = await every(client, "marketing", "/v1/leads", q=plan.email_tag)
        return {lead["email"]: lead["status"] for lead in found} == wanted

    await eventually(statuses)  # recycle and disqualify reach Marketing through the broker
    return {email: lead["id"] for email, lead in by_email.items()}


async def check_inside_sales(client: httpx.AsyncClient, plan: Plan, ids: dict[str, str]) -> None:
    """One queue item per MQL'd lead, in the planned state; breaches exactly where planned."""
    mqls = {ids[s.email]: s for s in plan.leads if s.count("await_mql")}

    async def states() -> dict[str, tuple[str, bool]]:
        items = await every(client, "inside_sales", "/v1/queue")
        return {
            i["lead_id"]: (i["status"], i["sla_breached_at"] is not None)
            for i in items
            if i["lead_id"] in mqls
        }

    wanted = {lead_id: inside_sales_state(s, plan.now) for lead_id, s in mqls.items()}
    assert any(breached for _, breached in wanted.values())
    assert any(not breached for _, breached in wanted.values())
    # Leads never touched are reported by the sweep once the grace has passed.
    await eventually(lambda: _equal(states, wanted), timeout=GRACE_S + 20, interval=0.5)


async def _equal(read: Any, wanted: Any) -> bool:
    return bool(await read() == wanted)


async def check_field_sales(client: httpx.AsyncClient, plan: Plan, ids: dict[str, str]) -> None:
    """One opportunity per SQL, won or lost as planned, neglected only if accepted late."""
    sqls = {ids[s.email]: s for s in plan.leads if s.count("qualify")}
    opportunities = [
        o for o in await every(client, "field_sales", "/v1/opportunities") if o["lead_id"] in sqls
    ]
    assert len(opportunities) == len(sqls) == plan.count("qualify")
    for opportunity in opportunities:
        script = sqls[opportunity["lead_id"]]
        stage = opportunity["stage"]
        assert {"won": "won", "lost": "lost"}.get(stage, "open") == outcome(script)
        assert (opportunity["neglected_at"] is not None) == neglected(script, plan.now)


async def check_customer_success(
    client: httpx.AsyncClient, plan: Plan, ids: dict[str, str]
) -> None:
    """One account per won deal, onboarded, churned as planned, with its usage history."""
    won = {ids[s.email]: s for s in plan.leads if s.count("win")}
    accounts = [
        a for a in await every(client, "customer_success", "/v1/accounts") if a["lead_id"] in won
    ]
    assert len(accounts) == len(won) == plan.count("win")
    for account in accounts:
        script = won[account["lead_id"]]
        assert (account["status"] == "churned") == bool(script.count("churn"))
        last_onboarding = [s for s in script.steps if s.kind == "onboarding"][-1]
        assert (account["onboarded_at"] is not None) == bool(last_onboarding.body["last"])
        detail = await client.get(
            f"/v1/accounts/{account['id']}", headers=headers("customer_success")
        )
        kinds = [entry["kind"] for entry in detail.json()["timeline"]]
        assert kinds.count("usage") == script.count("usage")
        assert kinds.count("nps") == script.count("nps")
