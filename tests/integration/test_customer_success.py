"""The customer success service on a real broker and both databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton.broker import EmbeddedBroker
from services.customer_success.app import create_app
from shared.events import DealWon, Envelope, new_event
from tests.helpers import (
    auth,
    eventually,
    make_settings,
    publish,
    read_events,
    serve,
    topic_tail,
)

RW = auth("customer_success:read", "customer_success:write")
T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
GOOD = {"active_users": 85, "seats": 100, "logins": 1700, "key_feature_adoption": 0.7}
BAD = {
    "active_users": 12,
    "seats": 100,
    "logins": 40,
    "key_feature_adoption": 0.1,
    "open_tickets": 8,
}


@pytest.fixture
async def customer_success(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        "customer_success",
        database_url=await database_url("customer_success"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        consumer_group_suffix=f"-{uuid.uuid4().hex[:6]}",
    )
    async with serve(create_app(settings)) as client:
        yield client


def deal(at: datetime = T0) -> Envelope:
    lead = uuid.uuid4()
    return new_event(
        DealWon(
            opportunity_id=uuid.uuid4(),
            lead_id=lead,
            company="Setouchi Shipping",
            amount=24_000_000,
            currency="JPY",
            mrr=2_000_000,
            term_months=12,
            contract_start=date(2026, 7, 1),
            owner_id=uuid.uuid4(),
        ),
        time=at,
        correlation_id=str(lead),
    )


async def account_of(client: httpx.AsyncClient, won: Envelope) -> dict[str, Any]:
    """The account opened from `won` (waits for the consumer)."""
    owner = won.data["owner_id"]

    async def find() -> list[dict[str, Any]]:
        page = await client.get("/v1/accounts", params={"owner_id": owner}, headers=RW)
        return list(page.json()["items"])

    found = await eventually(find)
    assert len(found) == 1, found
    return found[0]


async def test_deal_won_twice_is_one_account(
    customer_success: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    won = deal()
    await publish(broker.bootstrap, "baton.field_sales", won, won)
    account = await account_of(customer_success, won)
    assert account["renewal_date"] == "2027-07-01"
    assert account["mrr"] == 2_000_000 and account["status"] == "onboarding"
    assert account["lead_id"] == won.data["lead_id"]
    detail = (await customer_success.get(f"/v1/accounts/{account['id']}", headers=RW)).json()
    assert list(detail["onboarding"]) == [
        "kickoff",
        "admin_setup",
        "data_import",
        "training",
        "first_value",
    ]
    async with topic_tail(broker.bootstrap, "baton.customer_success") as consumer:
        for step in detail["onboarding"]:
            done = await customer_success.post(
                f"/v1/accounts/{account['id']}/onboarding/{step}", json={}, headers=RW
            )
            assert done.status_code == 200, done.text
        events = await read_events(consumer, "baton.CustomerOnboarded.v1", settle=1.5)
    onboarded = [e for _, e in events if e["type"] == "baton.CustomerOnboarded.v1"]
    assert len(onboarded) == 1 and onboarded[0]["data"]["lead_id"] == won.data["lead_id"]
    missing = await customer_success.post(
        f"/v1/accounts/{account['id']}/onboarding/party", json={}, headers=RW
    )
    assert missing.status_code == 404


async def test_one_churn_risk_per_drop_into_red(
    customer_success: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    won = deal()
    await publish(broker.bootstrap, "baton.field_sales", won)
    account = await account_of(customer_success, won)
    url = f"/v1/accounts/{account['id']}/usage"

    async def usage(values: dict[str, Any], days: int) -> dict[str, Any]:
        at = (T0 + timedelta(days=days)).isoformat()
        response = await customer_success.post(url, json={**values, "occurred_at": at}, headers=RW)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async with topic_tail(broker.bootstrap, "baton.customer_success") as consumer:
        assert (await usage(GOOD, 30))["band"] == "green"
        dropped = await usage(BAD, 60)
        assert dropped["band"] == "red" and dropped["churn_risk"] is True
        assert (await usage(BAD, 67))["churn_risk"] is False  # still red: no second alarm
        assert (await usage(GOOD, 90))["band"] == "green"  # recovered
        again = await usage(BAD, 120)
        assert again["churn_risk"] is True
        events = await read_events(
            consumer,
            *["baton.ChurnRisk.v1"] * 2,
            *["baton.HealthScoreChanged.v1"] * 4,
            where=lambda e: e["subject"] == account["id"],
        )
    mine = [e for _, e in events if e["subject"] == account["id"]]
    risks = [e for e in mine if e["type"] == "baton.ChurnRisk.v1"]
    assert len(risks) == 2
    first = risks[0]
    assert first["correlationid"] == won.data["lead_id"]
    assert first["data"]["lead_id"] == won.data["lead_id"]
    assert first["data"]["mrr_at_risk"] == 2_000_000 and first["data"]["band"] == "red"
    assert len(first["data"]["reasons"]) == 3
    assert datetime.fromisoformat(first["time"]) == T0 + timedelta(days=60)
    bands = [e["data"]["band"] for e in mine if e["type"] == "baton.HealthScoreChanged.v1"]
    assert bands == ["green", "red", "green", "red"]
    reds = await customer_success.get("/v1/accounts", params={"band": "red"}, headers=RW)
    assert account["id"] in [a["id"] for a in reds.json()["items"]]


async def test_revenue_nps_feedback_and_churn(
    customer_success: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    won = deal()
    await publish(broker.bootstrap, "baton.field_sales", won)
    account = await account_of(customer_success, won)
    url = f"/v1/accounts/{account['id']}"
    async with topic_tail(broker.bootstrap, "baton.customer_success") as consumer:
        nps = await customer_success.post(
            f"{url}/nps", json={"score": 9, "comment": "great"}, headers=RW
        )
        assert nps.status_code == 201
        bad_nps = await customer_success.post(f"{url}/nps", json={"score": 11}, headers=RW)
        assert bad_nps.status_code == 422 and bad_nps.json()["errors"][0]["name"] == "score"
        up = await customer_success.post(
            f"{url}/upsells", json={"mrr_delta": 500_000, "product": "Analytics"}, headers=RW
        )
        assert up.json()["mrr"] == 2_500_000
        zero = await customer_success.post(
            f"{url}/upsells", json={"mrr_delta": 0, "product": "x"}, headers=RW
        )
        assert zero.status_code == 422
        renewed = await customer_success.post(
            f"{url}/renewals", json={"mrr": 2_600_000}, headers=RW
        )
        assert renewed.json()["renewal_date"] == "2028-07-01"
        shared = await customer_success.post(
            f"{url}/feedback",
            json={"kind": "case_study", "text": "Halved port turnaround"},
            headers=RW,
        )
        assert shared.status_code == 202
        gone = await customer_success.post(
            f"{url}/churn", json={"reason": "merged into parent"}, headers=RW
        )
        assert gone.json()["status"] == "churned"
        after = await customer_success.post(f"{url}/usage", json=GOOD, headers=RW)
        assert after.status_code == 409
        more = await customer_success.post(
            f"{url}/upsells", json={"mrr_delta": 1, "product": "x"}, headers=RW
        )
        assert more.status_code == 409
        events = await read_events(
            consumer,
            "baton.NpsRecorded.v1",
            "baton.UpsellWon.v1",
            "baton.ContractRenewed.v1",
            "baton.CustomerChurned.v1",
            "baton.CustomerFeedbackShared.v1",
            where=lambda e: e["subject"] == account["id"],
        )
    mine = {e["type"]: e for _, e in events if e["subject"] == account["id"]}
    assert mine["baton.NpsRecorded.v1"]["data"]["score"] == 9
    assert mine["baton.UpsellWon.v1"]["data"] == {
        "account_id": account["id"],
        "mrr_delta": 500_000,
        "currency": "JPY",
        "product": "Analytics",
    }
    assert mine["baton.ContractRenewed.v1"]["data"]["mrr"] == 2_600_000
    assert mine["baton.CustomerChurned.v1"]["data"]["mrr_lost"] == 2_600_000
    feedback = mine["baton.CustomerFeedbackShared.v1"]
    assert feedback["correlationid"] == won.data["lead_id"]  # Marketing finds the lead by it
    detail = (await customer_success.get(url, headers=RW)).json()
    assert {e["kind"] for e in detail["timeline"]} >= {"won", "nps", "upsell", "renewal", "churn"}


async def test_health_model_is_admin_only_and_checked(customer_success: httpx.AsyncClient) -> None:
    current = (await customer_success.get("/v1/health-model", headers=RW)).json()
    assert current["version"] == 0 and current["red_below"] == 40
    body = {"weights": {"nps": 1, "active_user_ratio": 1}, "red_below": 50, "yellow_below": 75}
    assert (
        await customer_success.put("/v1/health-model", json=body, headers=RW)
    ).status_code == 403
    changed = await customer_success.put("/v1/health-model", json=body, headers=auth("admin"))
    assert changed.status_code == 200 and changed.json()["version"] == 1
    inverted = await customer_success.put(
        "/v1/health-model", json={**body, "red_below": 80}, headers=auth("admin")
    )
    assert inverted.status_code == 422
    unknown = await customer_success.put(
        "/v1/health-model", json={**body, "weights": {"vibes": 1}}, headers=auth("admin")
    )
    assert unknown.status_code == 422
    nobody = await customer_success.post(
        f"/v1/accounts/{uuid.uuid4()}/usage", json=GOOD, headers=RW
    )
    assert nobody.status_code == 404
