"""Hand-off latency: from the response of the write that crosses a hand-off to the lead being
visible in the next department, through outbox, relay, broker and inbox; against the raw broker
round trip (aiokafka produce -> a subscribed consumer receives) measured in the same run.
Targets: p50 <= 50 ms, p99 <= 250 ms, for MQL (Marketing -> Inside Sales) and SQL (Inside Sales ->
Field Sales).

    .venv/bin/python -m bench.handoff_latency [leads]    (default 1000)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.fleet import SECRET, fleet, percentile
from shared.auth import ADMIN_SCOPE, mint_token
from shared.settings import BatonSettings

POLL_S = 0.002
MQL_ACTIVITIES = ("demo_request", "webinar_attended", "pricing_page_view")  # 85 points, 3 touches


async def visible(client: httpx.AsyncClient, url: str) -> float:
    """Seconds until `url` answers 200, polling every 2 ms."""
    start = time.perf_counter()
    while (await client.get(url)).status_code != 200:  # noqa: ASYNC110  (polling is the point)
        await asyncio.sleep(POLL_S)
    return time.perf_counter() - start


async def handoffs(urls: dict[str, str], leads: int) -> tuple[list[float], list[float]]:
    headers = {
        "Authorization": f"Bearer {mint_token(SECRET, subject='bench', scopes=[ADMIN_SCOPE])}"
    }
    mql, sql = [], []
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        for n in range(leads):
            body = {
                "email": f"bench-{uuid.uuid4().hex}@example.jp",
                "name": f"Lead {n}",
                "company": "Bench KK",
                "title": "CTO",
                "source": "ads",
            }
            lead = (await client.post(f"{urls['marketing']}/v1/leads", json=body)).json()["id"]
            for activity in MQL_ACTIVITIES:
                response = await client.post(
                    f"{urls['marketing']}/v1/leads/{lead}/activities", json={"type": activity}
                )
                response.raise_for_status()
            mql.append(await visible(client, f"{urls['inside_sales']}/v1/leads/{lead}"))
            qualified = await client.post(
                f"{urls['inside_sales']}/v1/leads/{lead}/qualify",
                json={"need": "reporting", "decision_maker": "CFO", "estimated_amount": 1000},
            )
            qualified.raise_for_status()
            opportunity = qualified.json()["opportunity_id"]
            sql.append(
                await visible(client, f"{urls['field_sales']}/v1/opportunities/{opportunity}")
            )
    return mql, sql


async def raw_round_trips(bootstrap: str, count: int) -> list[float]:
    """Produce one message at a time; time until the subscribed consumer has it."""
    topic = f"bench.roundtrip.{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=BatonSettings().kafka_fetch_max_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")  # creates the topic
    await consumer.start()
    try:
        await consumer.getone()
        times = []
        for n in range(count):
            start = time.perf_counter()
            await producer.send(topic, str(n).encode())
            await consumer.getone()
            times.append(time.perf_counter() - start)
        return times
    finally:
        await consumer.stop()
        await producer.stop()


def row(name: str, values: list[float], raw: list[float]) -> str:
    p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    raw50, raw99 = percentile(raw, 50) * 1000, percentile(raw, 99) * 1000
    verdict = "ok" if p50 <= 50 and p99 <= 250 else "MISSED"
    return (
        f"{name:<28}{p50:>8.1f}{p99:>9.1f}{p50 / raw50:>9.1f}x{p99 / raw99:>8.1f}x  "
        f"(p50 <= 50, p99 <= 250: {verdict})"
    )


def main(leads: int = 1000) -> None:
    with fleet("marketing", "inside_sales", "field_sales") as supervisor:
        urls = {child.service: child.url for child in supervisor.children}
        bootstrap = supervisor._env["BATON_KAFKA_BOOTSTRAP"]
        raw = asyncio.run(raw_round_trips(bootstrap, 500))
        mql, sql = asyncio.run(handoffs(urls, leads))
    print(
        f"{leads} leads; raw broker round trip p50 {percentile(raw, 50) * 1000:.1f} ms, "
        f"p99 {percentile(raw, 99) * 1000:.1f} ms (500 messages)"
    )
    print(f"{'hand-off':<28}{'p50 ms':>8}{'p99 ms':>9}{'p50/raw':>10}{'p99/raw':>9}")
    print(row("MQL: Marketing -> Inside", mql, raw))
    print(row("SQL: Inside -> Field Sales", sql, raw))
    mean_mql, mean_sql = statistics.mean(mql) * 1000, statistics.mean(sql) * 1000
    print(f"mean MQL {mean_mql:.1f} ms, mean SQL {mean_sql:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("leads", type=int, nargs="?", default=1000)
    main(parser.parse_args().leads)
