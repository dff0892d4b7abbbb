"""The inside sales service on a real broker and both databases."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from baton.broker import EmbeddedBroker
from services.inside_sales.app import create_app
from shared.events import Envelope, LeadQualified, new_event
from tests.helpers import (
    auth,
    eventually,
    make_settings,
    publish,
    read_events,
    serve,
    topic_tail,
)

RW = auth("inside_sales:read", "inside_sales:write")
ADMIN = auth("admin")


@pytest.fixture
async def inside_sales(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        "inside_sales",
        database_url=await database_url("inside_sales"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        sweep_interval_s=0.2,
        sweep_grace_s=5.0,  # ample for a loaded CI machine to touch a just-received MQL
        consumer_group_suffix=f"-{uuid.uuid4().hex[:6]}",
    )
    async with serve(create_app(settings)) as client:
        yield client


def mql(at: datetime) -> Envelope:
    lead = uuid.uuid4()
    return new_event(
        LeadQualified(
            lead_id=lead,
            email=f"{lead.hex[:8]}@example.jp",
            name="Sayaka Kondo",
            company="Kondo Denki",
            title="IT Manager",
            source="seminar",
            score=88,
            touches=5,
            rule={"min_score": 80, "min_touches": 3},
        ),
        time=at,
    )


def tail(bootstrap: str) -> Any:
    return topic_tail(bootstrap, "baton.inside_sales")


async def events_for(
    consumer: AIOKafkaConsumer, lead_id: str, *types: str, settle: float = 1.0
) -> list[Any]:
    """The events about `lead_id`, read until `types` have come (`read_events`)."""

    def about(envelope: Any) -> bool:
        return bool(envelope["data"].get("lead_id") == lead_id)

    events = await read_events(consumer, *types, where=about, settle=settle)
    return [(r, e) for r, e in events if about(e)]


async def queued(client: httpx.AsyncClient, lead_id: str) -> dict[str, Any] | None:
    response = await client.get(f"/v1/leads/{lead_id}", headers=RW)
    return response.json() if response.status_code == 200 else None


async def test_mql_delivered_twice_is_one_queue_item(
    inside_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    reps = []
    for name in ("aoi", "ren"):
        body = {"name": name, "email": f"{name}-{uuid.uuid4().hex[:6]}@example.jp"}
        reps.append((await inside_sales.post("/v1/reps", json=body, headers=RW)).json())
    qualified_at = datetime.now(UTC).replace(microsecond=0)
    first, second = mql(qualified_at), mql(qualified_at + timedelta(minutes=1))
    lead_id = str(first.data["lead_id"])
    async with tail(broker.bootstrap) as consumer:
        await publish(broker.bootstrap, "baton.marketing", first, first, second)
        item = await eventually(lambda: queued(inside_sales, lead_id))
        await eventually(lambda: queued(inside_sales, str(second.data["lead_id"])))
        accepted = await events_for(consumer, lead_id, "baton.LeadAccepted.v1", settle=1.5)
    assert item["respond_by"] == (qualified_at + timedelta(hours=24)).isoformat().replace(
        "+00:00", "Z"
    )
    assert item["score"] == 88 and item["touches"] == 5 and item["source"] == "seminar"
    assert item["mql_rule"] == {"min_score": 80, "min_touches": 3}
    assert [e["type"] for _, e in accepted] == ["baton.LeadAccepted.v1"]
    # (the fresh group reads older tests' MQLs too: page through the whole queue)
    everything: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = (await inside_sales.get("/v1/queue", params=params, headers=RW)).json()
        everything.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len([i for i in everything if i["lead_id"] == lead_id]) == 1
    assert len({i["lead_id"] for i in everything}) == len(everything)
    assert item["rep_id"] in {r["id"] for r in reps}  # dealt to an active rep (fairness: unit)


async def test_touch_then_qualify_creates_one_opportunity(
    inside_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    at = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
    event = mql(at)
    lead_id = str(event.data["lead_id"])
    await publish(broker.bootstrap, "baton.marketing", event)
    await eventually(lambda: queued(inside_sales, lead_id))
    async with tail(broker.bootstrap) as consumer:
        touch = await inside_sales.post(
            f"/v1/leads/{lead_id}/touches",
            json={"channel": "call", "outcome": "connected", "occurred_at": "2026-04-06T11:30:00Z"},
            headers=RW,
        )
        assert touch.status_code == 201, touch.text
        assert touch.json()["first_contact"] is True
        assert touch.json()["response_seconds"] == 9000
        unmet = await inside_sales.post(
            f"/v1/leads/{lead_id}/qualify", json={"estimated_amount": 5_000_000}, headers=RW
        )
        assert unmet.status_code == 422
        assert [e["name"] for e in unmet.json()["errors"]] == ["need", "decision_maker"]
        body = {
            "need": "Paperless inspection",
            "decision_maker": "Plant director",
            "budget": 8_000_000,
            "timeline": "Q3",
            "estimated_amount": 6_000_000,
            "occurred_at": "2026-04-08T10:00:00+09:00",
        }
        created = await inside_sales.post(f"/v1/leads/{lead_id}/qualify", json=body, headers=RW)
        assert created.status_code == 201, created.text
        twice = await inside_sales.post(f"/v1/leads/{lead_id}/qualify", json=body, headers=RW)
        assert twice.status_code == 409
        late_touch = await inside_sales.post(
            f"/v1/leads/{lead_id}/touches",
            json={"channel": "email", "outcome": "replied"},
            headers=RW,
        )
        assert late_touch.status_code == 409
        events = await events_for(
            consumer, lead_id, "baton.LeadContacted.v1", "baton.OpportunityCreated.v1"
        )
    # (LeadAccepted came before the tail; the embedded broker may hand its batch back)
    events = [(r, e) for r, e in events if e["type"] != "baton.LeadAccepted.v1"]
    types = sorted(e["type"] for _, e in events)  # two aggregates: no order between them
    assert types == ["baton.LeadContacted.v1", "baton.OpportunityCreated.v1"]
    record, opportunity = next((r, e) for r, e in events if "Opportunity" in e["type"])
    opportunity_id = created.json()["opportunity_id"]
    assert record.key == opportunity_id.encode()
    assert opportunity["subject"] == opportunity["partitionkey"] == opportunity_id
    assert opportunity["correlationid"] == lead_id
    assert opportunity["source"] == "/services/inside_sales"
    assert datetime.fromisoformat(opportunity["time"]) == datetime(2026, 4, 8, 1, tzinfo=UTC)
    data = opportunity["data"]
    assert data["contact"] == {
        "name": "Sayaka Kondo",
        "email": event.data["email"],
        "title": "IT Manager",
    }
    assert (data["need"], data["estimated_amount"], data["currency"]) == (
        "Paperless inspection",
        6_000_000,
        "JPY",
    )


async def test_backdated_mql_without_touch_breaches_once(
    inside_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    event = mql(datetime(2026, 2, 2, 9, 0, tzinfo=UTC))
    lead_id = str(event.data["lead_id"])
    async with tail(broker.bootstrap) as consumer:
        await publish(broker.bootstrap, "baton.marketing", event)
        breached = None

        async def is_breached() -> Any:
            item = await queued(inside_sales, lead_id)
            return item and item["sla_breached_at"]

        breached = await eventually(is_breached)
        events = await events_for(  # a few more sweeps run meanwhile
            consumer, lead_id, "baton.LeadResponseSlaBreached.v1", settle=2.0
        )
    assert breached == "2026-02-03T09:00:00Z"
    kinds = [e["type"] for _, e in events]
    assert kinds.count("baton.LeadResponseSlaBreached.v1") == 1
    breach = next(e for _, e in events if e["type"] == "baton.LeadResponseSlaBreached.v1")
    assert breach["time"] == "2026-02-03T09:00:00Z"


async def test_backdated_touches_are_judged_in_event_time(
    inside_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    on_time, late = (
        mql(datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
        mql(datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
    )
    await publish(broker.bootstrap, "baton.marketing", on_time, late)
    for event, touched_at in ((on_time, "2026-01-05T20:00:00Z"), (late, "2026-01-07T09:00:00Z")):
        lead_id = str(event.data["lead_id"])
        await eventually(lambda lead_id=lead_id: queued(inside_sales, lead_id))
        response = await inside_sales.post(
            f"/v1/leads/{lead_id}/touches",
            json={"channel": "call", "outcome": "connected", "occurred_at": touched_at},
            headers=RW,
        )
        assert response.status_code == 201
    await_time = time.monotonic() + 1.5
    while time.monotonic() < await_time:  # let the sweep pass over both
        await queued(inside_sales, str(on_time.data["lead_id"]))
    assert (await queued(inside_sales, str(on_time.data["lead_id"])))["sla_breached_at"] is None
    assert (await queued(inside_sales, str(late.data["lead_id"])))[
        "sla_breached_at"
    ] == "2026-01-06T09:00:00Z"


async def test_recycle_disqualify_and_illegal_moves(
    inside_sales: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    first, second = mql(datetime.now(UTC)), mql(datetime.now(UTC))
    await publish(broker.bootstrap, "baton.marketing", first, second)
    a, b = str(first.data["lead_id"]), str(second.data["lead_id"])
    await eventually(lambda: queued(inside_sales, b))
    await eventually(lambda: queued(inside_sales, a))
    assert (
        await inside_sales.post(f"/v1/leads/{a}/recycle", json={"reason": "no budget"}, headers=RW)
    ).status_code == 200
    assert (
        await inside_sales.post(f"/v1/leads/{b}/disqualify", json={"reason": "student"}, headers=RW)
    ).status_code == 200
    again = await inside_sales.post(f"/v1/leads/{b}/recycle", json={"reason": "x"}, headers=RW)
    assert again.status_code == 409
    touch = await inside_sales.post(
        f"/v1/leads/{b}/touches", json={"channel": "call", "outcome": "connected"}, headers=RW
    )
    assert touch.status_code == 409
    assert "disqualified" in touch.json()["detail"]
    empty = await inside_sales.post(f"/v1/leads/{a}/recycle", json={"reason": ""}, headers=RW)
    assert empty.status_code in (409, 422)
    unknown = await inside_sales.post(
        f"/v1/leads/{uuid.uuid4()}/touches",
        json={"channel": "call", "outcome": "connected"},
        headers=RW,
    )
    assert unknown.status_code == 404
    bad_channel = await inside_sales.post(
        f"/v1/leads/{a}/touches", json={"channel": "fax", "outcome": "connected"}, headers=RW
    )
    assert bad_channel.status_code == 422
    assert bad_channel.json()["errors"][0]["name"] == "channel"
    # a recycled lead that Marketing qualifies again comes back into the queue
    back = new_event(LeadQualified.model_validate(first.data), time=datetime.now(UTC))
    await publish(broker.bootstrap, "baton.marketing", back)

    async def requeued() -> bool:
        item = await queued(inside_sales, a)
        return bool(item and item["status"] == "new")

    await eventually(requeued)


async def test_sla_settings_are_admin_only_and_versioned(inside_sales: httpx.AsyncClient) -> None:
    default = (await inside_sales.get("/v1/sla", headers=RW)).json()
    assert default["version"] == 0
    assert default["response_hours"] == 24 and default["sql_criteria"] == ["need", "decision_maker"]
    body = {"response_hours": 4, "sql_criteria": ["need", "budget"]}
    assert (await inside_sales.put("/v1/sla", json=body, headers=RW)).status_code == 403
    changed = await inside_sales.put("/v1/sla", json=body, headers=ADMIN)
    assert changed.status_code == 200
    assert changed.json()["version"] == 1 and changed.json()["changed_by"] == "tests"
    bad = await inside_sales.put("/v1/sla", json={**body, "sql_criteria": ["vibes"]}, headers=ADMIN)
    assert bad.status_code == 422
    rep = await inside_sales.post("/v1/reps", json={"name": "Kai", "email": "bad"}, headers=RW)
    assert rep.status_code == 422 and rep.json()["errors"][0]["name"] == "email"
