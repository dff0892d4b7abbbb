"""Outbox -> broker -> inbox across real services, a real broker and both databases (DESIGN §4)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select

from baton.broker import EmbeddedBroker
from services.kpi.app import create_app as create_kpi
from services.marketing.app import create_app as create_marketing
from shared.bus import ensure_topics
from shared.db import create_engine
from shared.outbox import OutboxRow, replay
from shared.settings import ALL_TOPICS, BatonSettings
from tests.helpers import auth, eventually, make_settings, serve

WRITE = auth("marketing:write")
READ_KPI = auth("kpi:read")


def lead_body(n: int) -> dict[str, Any]:
    return {
        "email": f"buyer-{uuid.uuid4().hex[:10]}-{n}@example.co.jp",
        "name": f"Buyer {n}",
        "company": "Kansai Machinery KK",
        "title": "Head of IT",
        "source": "webinar",
    }


async def captured_count(client: httpx.AsyncClient, campaign_id: str | None = None) -> int:
    """Leads captured around today (of the campaign, if given), as the KPI service counts them."""
    today = datetime.now(ZoneInfo("Asia/Tokyo")).date()
    window = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=2))}
    if campaign_id is not None:
        window["campaign_id"] = campaign_id
    response = await client.get("/v1/kpis/marketing", params=window, headers=READ_KPI)
    assert response.status_code == 200, response.text
    return int(response.json()["total"]["kpis"]["marketing"]["leads_captured"])


async def test_outbox_to_inbox_round_trip(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> None:
    marketing_settings = make_settings(
        "marketing",
        database_url=await database_url("marketing"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    marketing = create_marketing(marketing_settings)
    kpi = create_kpi(
        make_settings(
            "kpi",
            database_url=await database_url("kpi"),
            bootstrap=broker.bootstrap,
            data_dir=tmp_path,
        )
    )
    async with serve(kpi) as kpi_client, serve(marketing) as mkt:
        # A campaign of its own: the topic also holds the leads of earlier tests.
        campaign = await mkt.post(
            "/v1/campaigns", json={"name": "Round trip", "channel": "webinar"}, headers=WRITE
        )
        assert campaign.status_code == 201, campaign.text
        campaign_id = campaign.json()["id"]
        body = {**lead_body(1), "campaign_id": campaign_id}
        created = await mkt.post("/v1/leads", json=body, headers=WRITE)
        assert created.status_code == 201, created.text
        await eventually(lambda: _at_least(kpi_client, 1, campaign_id))
        await asyncio.sleep(0.5)  # nothing more arrives: exactly one effect
        assert await captured_count(kpi_client, campaign_id) == 1
        # `baton replay` publishes the whole log again: the consumer has already seen it all
        assert await replay(marketing_settings) == 1
        await asyncio.sleep(1.5)
        assert await captured_count(kpi_client, campaign_id) == 1


async def _at_least(
    client: httpx.AsyncClient, expected: int, campaign_id: str | None = None
) -> bool:
    return await captured_count(client, campaign_id) >= expected


async def test_writes_accepted_while_broker_down_arrive_once(
    database_url: Any, tmp_path: Path
) -> None:
    """500 writes while the broker is stopped; after it comes back every event arrives once."""
    own = EmbeddedBroker(log_file=tmp_path / "broker.log").start()
    base = BatonSettings(kafka_bootstrap=own.bootstrap)
    await ensure_topics(base, ALL_TOPICS)
    marketing_settings = make_settings(
        "marketing",
        database_url=await database_url("marketing"),
        bootstrap=own.bootstrap,
        data_dir=tmp_path,
        kafka_request_timeout_ms=2000,
    )
    kpi = create_kpi(
        make_settings(
            "kpi",
            database_url=await database_url("kpi"),
            bootstrap=own.bootstrap,
            data_dir=tmp_path,
        )
    )
    try:
        async with serve(kpi) as kpi_client, serve(create_marketing(marketing_settings)) as mkt:
            own.kill()
            limits = asyncio.Semaphore(16)

            async def write(n: int) -> int:
                async with limits:
                    response = await mkt.post("/v1/leads", json=lead_body(n), headers=WRITE)
                    return response.status_code

            statuses = await asyncio.gather(*(write(n) for n in range(500)))
            assert statuses == [201] * 500
            assert await _pending(marketing_settings.db_url) > 0

            own.start()  # same port, empty log: as after a crash of the embedded broker
            await ensure_topics(base, ALL_TOPICS)
            try:
                await eventually(lambda: _at_least(kpi_client, 500), timeout=90)
            except AssertionError as exc:  # (rare) say what became of the broker
                raise AssertionError(f"{exc}; {_broker_state(own, tmp_path)}") from exc
            await asyncio.sleep(1.0)
            assert await captured_count(kpi_client) == 500
            assert await _pending(marketing_settings.db_url) == 0
    finally:
        own.stop()


def _broker_state(broker: EmbeddedBroker, log_dir: Path) -> str:
    log = (log_dir / "broker.log").read_text(errors="replace").splitlines()[-20:]
    state = "running" if broker.running else "not running"
    return f"the broker is {state}; the end of its log:\n" + "\n".join(log)


async def _pending(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            query = select(func.count()).where(OutboxRow.published_at.is_(None))
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()
