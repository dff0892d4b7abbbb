"""The field sales service on a real broker and both databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.broker import EmbeddedBroker
from services.field_sales.app import create_app
from shared.events import CONTENT_TYPE, ChurnRisk, Envelope, OpportunityCreated, new_event
from tests.helpers import (
    auth,
    eventually,
    make_settings,
    publish,
    read_events,
    serve,
    topic_tail,
)

RW = auth("field_sales:read", "field_sales:write")


@pytest.fixture
async def field_sales(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        "field_sales",
        database_url=await database_url("field_sales"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        sweep_interval_s=0.2,
        sweep_grace_s=1.0,
        consumer_group_suffix=f"-{uuid.uuid4().hex[:6]}",
    )
    async with serve(create_app(settings)) as client:
        yield client


def sql(at: datetime) -> Envelope:
    lead, opportunity = uuid.uuid4(), uuid.uuid4()
    return new_event(
        OpportunityCreated(
            opportunity_id=opportunity,
            lead_id=lead,
            company="Hokuriku Pharma",
            contact={"name": "Jun Abe", "email": "abe@hokuriku.example.jp", "title": "CIO"},
            need="Traceability across three plants",
            decision_maker="Board (ringi)",
            budget=20_000_000,
            timeline="FY2026 H2",
            estimated_amount=18_000_000,
            currency="JPY",
            rep_id=uuid.uuid4(),
        ),
        time=at,
        correlation_id=str(lead),
    )


async def opportunity(client: httpx.AsyncClient, opportunity_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/opportunities/{opportunity_id}", headers=RW)
    return response.json() if response.status_code == 200 else None


async def test_sql_delivered_twice_is_one_opportunity_and_win_emits_deal_won(
    field_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    event = sql(datetime.now(UTC))
    opportunity_id = str(event.data["opportunity_id"])
    lead_id = str(event.data["lead_id"])
    await publish(broker.bootstrap, "baton.inside_sales", event, event)
    got = await eventually(lambda: opportunity(field_sales, opportunity_id))
    assert (got["need"], got["decision_maker"], got["contact_name"]) == (
        "Traceability across three plants",
        "Board (ringi)",
        "Jun Abe",
    )
    assert got["stage"] == "qualification" and got["probability"] == 10
    listing = await field_sales.get("/v1/opportunities", params={"limit": 200}, headers=RW)
    assert [o["id"] for o in listing.json()["items"]].count(opportunity_id) == 1

    owner = str(uuid.uuid4())
    url = f"/v1/opportunities/{opportunity_id}"
    early = await field_sales.post(f"{url}/stage", json={"stage": "proposal"}, headers=RW)
    assert early.status_code == 409  # nobody owns it yet
    assert (
        await field_sales.post(f"{url}/accept", json={"owner_id": owner}, headers=RW)
    ).status_code == 200
    moved = await field_sales.post(
        f"{url}/stage",
        json={
            "stage": "approval",
            "amount": 16_000_000,
            "expected_close": "2026-09-30",
            "occurred_at": "2026-09-01T10:00:00+09:00",
        },
        headers=RW,
    )
    assert moved.json()["probability"] == 70
    win = {
        "amount": 16_000_000,
        "mrr": 1_200_000,
        "term_months": 12,
        "contract_start": "2026-10-01",
        "occurred_at": "2026-09-28T15:00:00+09:00",
    }
    async with topic_tail(broker.bootstrap, "baton.field_sales") as consumer:
        won = await field_sales.post(f"{url}/win", json=win, headers=RW)
        assert won.status_code == 200, won.text
        again = await field_sales.post(f"{url}/win", json=win, headers=RW)
        assert again.status_code == 409
        events = await read_events(
            consumer,
            "baton.DealWon.v1",
            where=lambda e: e["subject"] == opportunity_id,
            settle=1.5,
        )
    deals = [
        (r, e)
        for r, e in events
        if e["type"] == "baton.DealWon.v1" and e["subject"] == opportunity_id
    ]
    assert len(deals) == 1
    record, deal = deals[0]
    assert record.key == opportunity_id.encode()
    assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
    assert deal["specversion"] == "1.0" and deal["source"] == "/services/field_sales"
    assert deal["partitionkey"] == opportunity_id and deal["correlationid"] == lead_id
    assert datetime.fromisoformat(deal["time"]) == datetime(2026, 9, 28, 6, tzinfo=UTC)
    assert deal["data"] == {
        "opportunity_id": opportunity_id,
        "lead_id": lead_id,
        "company": "Hokuriku Pharma",
        "amount": 16_000_000,
        "currency": "JPY",
        "mrr": 1_200_000,
        "term_months": 12,
        "contract_start": "2026-10-01",
        "owner_id": owner,
    }
    closed = await field_sales.post(f"{url}/stage", json={"stage": "quote"}, headers=RW)
    assert closed.status_code == 409
    detail = await opportunity(field_sales, opportunity_id)
    assert detail is not None
    assert [h["to_stage"] for h in detail["history"]] == ["approval", "won"]


async def test_unaccepted_backdated_opportunity_is_neglected_once(
    field_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    event = sql(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    opportunity_id = str(event.data["opportunity_id"])
    async with topic_tail(broker.bootstrap, "baton.field_sales") as consumer:
        await publish(broker.bootstrap, "baton.inside_sales", event)

        async def neglected() -> Any:
            found = await opportunity(field_sales, opportunity_id)
            return found and found["neglected_at"]

        assert await eventually(neglected) == "2026-03-04T09:00:00Z"
        events = await read_events(  # more sweeps run meanwhile
            consumer,
            "baton.OpportunityNeglected.v1",
            where=lambda e: e["subject"] == opportunity_id,
            settle=1.5,
        )
    mine = [e for _, e in events if e["subject"] == opportunity_id]
    assert [e["type"] for e in mine] == ["baton.OpportunityNeglected.v1"]
    assert datetime.fromisoformat(mine[0]["time"]) == datetime(2026, 3, 4, 9, tzinfo=UTC)
    late = await field_sales.post(
        f"/v1/opportunities/{opportunity_id}/accept",
        json={"owner_id": str(uuid.uuid4())},
        headers=RW,
    )
    assert late.status_code == 200
    assert late.json()["neglected_at"] == "2026-03-04T09:00:00Z"


async def test_churn_risk_reaches_the_owner_of_the_won_deal(
    field_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    event = sql(datetime.now(UTC) - timedelta(days=1))
    opportunity_id, lead_id = str(event.data["opportunity_id"]), event.data["lead_id"]
    await publish(broker.bootstrap, "baton.inside_sales", event)
    await eventually(lambda: opportunity(field_sales, opportunity_id))
    owner = str(uuid.uuid4())
    url = f"/v1/opportunities/{opportunity_id}"
    await field_sales.post(f"{url}/accept", json={"owner_id": owner}, headers=RW)
    won = await field_sales.post(
        f"{url}/win",
        json={"amount": 1, "mrr": 100_000, "term_months": 12, "contract_start": "2026-05-01"},
        headers=RW,
    )
    assert won.status_code == 200
    risk = new_event(
        ChurnRisk(
            account_id=uuid.uuid4(),
            lead_id=uuid.UUID(lead_id),
            health_score=31,
            band="red",
            reasons=["logins down 60%", "5 open tickets"],
            mrr_at_risk=100_000,
            currency="JPY",
        ),
        correlation_id=lead_id,
    )
    await publish(broker.bootstrap, "baton.customer_success", risk)

    async def owners_alerts() -> list[dict[str, Any]]:
        response = await field_sales.get("/v1/alerts", params={"owner_id": owner}, headers=RW)
        return list(response.json())

    alerts = await eventually(owners_alerts)
    assert len(alerts) == 1
    assert alerts[0]["opportunity_id"] == opportunity_id
    assert alerts[0]["company"] == "Hokuriku Pharma"
    assert alerts[0]["reasons"] == ["logins down 60%", "5 open tickets"]
    others = await field_sales.get("/v1/alerts", params={"owner_id": str(uuid.uuid4())}, headers=RW)
    assert others.json() == []


async def test_lose_needs_a_known_reason_and_pipeline_adds_up(
    field_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    events = [sql(datetime.now(UTC)) for _ in range(3)]
    await publish(broker.bootstrap, "baton.inside_sales", *events)
    ids = [str(e.data["opportunity_id"]) for e in events]
    for opportunity_id in ids:
        await eventually(
            lambda opportunity_id=opportunity_id: opportunity(field_sales, opportunity_id)
        )
    owner = str(uuid.uuid4())
    for opportunity_id in ids:
        await field_sales.post(
            f"/v1/opportunities/{opportunity_id}/accept", json={"owner_id": owner}, headers=RW
        )
    await field_sales.post(
        f"/v1/opportunities/{ids[0]}/stage",
        json={"stage": "quote", "amount": 10_000_000, "expected_close": "2027-01-15"},
        headers=RW,
    )
    unknown = await field_sales.post(
        f"/v1/opportunities/{ids[1]}/lose", json={"reason": "bad vibes"}, headers=RW
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["name"] == "reason"
    lost = await field_sales.post(
        f"/v1/opportunities/{ids[1]}/lose", json={"reason": "competitor"}, headers=RW
    )
    assert lost.status_code == 200 and lost.json()["stage"] == "lost"
    pipeline = (await field_sales.get("/v1/pipeline", headers=RW)).json()
    mine = pipeline["by_owner"][owner]
    assert mine["count"] == 2  # the lost one is out
    assert mine["amount"] == 10_000_000 + 18_000_000
    assert mine["weighted_amount"] == 10_000_000 * 0.5 + 18_000_000 * 0.1
    assert pipeline["expected_closes_by_month"]["2027-01"]["amount"] >= 10_000_000
    missing = await field_sales.post(
        f"/v1/opportunities/{uuid.uuid4()}/accept", json={"owner_id": owner}, headers=RW
    )
    assert missing.status_code == 404
    policy = await field_sales.put(
        "/v1/sla", json={"accept_hours": 24, "loss_reasons": ["price"]}, headers=RW
    )
    assert policy.status_code == 403
    changed = await field_sales.put(
        "/v1/sla", json={"accept_hours": 24, "loss_reasons": ["price"]}, headers=auth("admin")
    )
    assert changed.status_code == 200 and changed.json()["version"] == 1
    assert (await field_sales.get("/v1/sla", headers=RW)).json()["loss_reasons"] == ["price"]
