"""Hand-off latency: from the response of the write that crosses a hand-off to the lead being
visible in the next department, through outbox, relay, broker and inbox; against the raw broker
round trip (aiokafka produce -> a subscribed consumer receives) measured in the same run.
Targets: p50 <= 50 ms, p99 <= 250 ms, for MQL (Marketing -> Inside Sales) and SQL (Inside Sales ->
Field Sales).

    .venv/bin/python -m bench.handoff_latency [leads] [--poll-ms 2]    (default 1000 leads)

Visibility is found by polling the next department's API every `--poll-ms` (2 ms): each poll is
a request that department serves on the event loop its consumer runs on, so polling sooner
finds the lead sooner but also slows down what it waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.fleet import SECRET, fleet, percentile
from shared.auth import ADMIN_SCOPE, mint_token
from shared.settings import BatonSettings, topic_of

MQL_ACTIVITIES = ("demo_request", "webinar_attended", "pricing_page_view")  # 85 points, 3 touches


async def visible(client: httpx.AsyncClient, url: str, poll_s: float) -> float:
    """Seconds until `url` answers 200, polling every `poll_s`."""
    start = time.perf_counter()
    while (await client.get(url)).status_code != 200:  # noqa: ASYNC110  (polling is the point)
        await asyncio.sleep(poll_s)
    return time.perf_counter() - start


class Tail:
    """When each event of `types` reaches a consumer of its own on `topics`, by subject: how
    long an event takes to be on the topic (outbox, relay, broker), apart from the consumer's
    work after it."""

    def __init__(self, bootstrap: str, topics: list[str], types: set[str]) -> None:
        self.seen: dict[str, float] = {}
        self._types = types
        self._topics = topics
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            fetch_max_wait_ms=BatonSettings().kafka_fetch_max_wait_ms,
        )
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Condition()

    async def arrival(self, subject: str) -> float:
        """When the event about `subject` arrived (waiting for it if need be)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: subject in self.seen), 30)
        return self.seen[subject]

    async def __aenter__(self) -> Tail:
        consumer = self._consumer
        await consumer.start()
        await consumer.topics()  # the partitions of every topic
        partitions = [
            TopicPartition(topic, partition)
            for topic in self._topics
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolved now: from here on, not from the first fetch
            await consumer.position(tp)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._consumer.stop()

    async def _read(self) -> None:
        async for message in self._consumer:
            event = orjson.loads(message.value or b"{}")
            if event.get("type") in self._types:
                self.seen.setdefault(event["subject"], time.perf_counter())
                async with self._arrived:
                    self._arrived.notify_all()


async def handoffs(
    urls: dict[str, str], bootstrap: str, leads: int, poll_s: float
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per lead: MQL visible, SQL visible, and when LeadQualified and OpportunityCreated were
    on their topics (seconds after the response of the write that crossed the line)."""
    headers = {
        "Authorization": f"Bearer {mint_token(SECRET, subject='bench', scopes=[ADMIN_SCOPE])}"
    }
    mql, sql, mql_on_topic, sql_on_topic = [], [], [], []
    topics = [topic_of("marketing"), topic_of("inside_sales")]
    types = {"baton.LeadQualified.v1", "baton.OpportunityCreated.v1"}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as client,
        Tail(bootstrap, topics, types) as tail,
    ):
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
            crossed = time.perf_counter()
            mql.append(await visible(client, f"{urls['inside_sales']}/v1/leads/{lead}", poll_s))
            mql_on_topic.append(await tail.arrival(lead) - crossed)
            qualified = await client.post(
                f"{urls['inside_sales']}/v1/leads/{lead}/qualify",
                json={"need": "reporting", "decision_maker": "CFO", "estimated_amount": 1000},
            )
            qualified.raise_for_status()
            crossed = time.perf_counter()
            opportunity = qualified.json()["opportunity_id"]
            sql.append(
                await visible(
                    client, f"{urls['field_sales']}/v1/opportunities/{opportunity}", poll_s
                )
            )
            sql_on_topic.append(await tail.arrival(opportunity) - crossed)
    return mql, sql, mql_on_topic, sql_on_topic


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


def main(leads: int = 1000, poll_ms: float = 2.0) -> None:
    with fleet("marketing", "inside_sales", "field_sales") as supervisor:
        urls = {child.service: child.url for child in supervisor.children}
        bootstrap = supervisor._env["BATON_KAFKA_BOOTSTRAP"]
        raw = asyncio.run(raw_round_trips(bootstrap, 500))
        mql, sql, mql_on_topic, sql_on_topic = asyncio.run(
            handoffs(urls, bootstrap, leads, poll_ms / 1000)
        )
    print(
        f"{leads} leads, polled every {poll_ms:g} ms; "
        f"raw broker round trip p50 {percentile(raw, 50) * 1000:.1f} ms, "
        f"p99 {percentile(raw, 99) * 1000:.1f} ms (500 messages)"
    )
    print(f"{'hand-off':<28}{'p50 ms':>8}{'p99 ms':>9}{'p50/raw':>10}{'p99/raw':>9}")
    print(row("MQL: Marketing -> Inside", mql, raw))
    print(row("SQL: Inside -> Field Sales", sql, raw))
    mean_mql, mean_sql = statistics.mean(mql) * 1000, statistics.mean(sql) * 1000
    print(f"mean MQL {mean_mql:.1f} ms, mean SQL {mean_sql:.1f} ms")
    for name, on_topic in (("LeadQualified", mql_on_topic), ("OpportunityCreated", sql_on_topic)):
        p50, p99 = percentile(on_topic, 50) * 1000, percentile(on_topic, 99) * 1000
        print(
            f"{name} on its topic (a consumer of the benchmark's): p50 {p50:.1f}, p99 {p99:.1f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("leads", type=int, nargs="?", default=1000)
    parser.add_argument("--poll-ms", type=float, default=2.0, help="poll interval (2 ms)")
    args = parser.parse_args()
    main(args.leads, args.poll_ms)
