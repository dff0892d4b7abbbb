"""KPI ingest throughput: events per second the KPI service applies (read model and daily totals
committed, offsets committed) when it catches up on a backlog, against a raw aiokafka consume +
orjson parse of the same topics, in the same run, on the same embedded broker.

N events of a seeded funnel (LeadCaptured, LeadEngaged, LeadQualified, LeadAccepted,
LeadContacted, SLA breaches, recycles, disqualifications, OpportunityCreated / Accepted /
Neglected, DealWon / Lost, CustomerOnboarded, NPS, upsells, renewals, churn risks and churns,
campaign costs; every type has a KPI handler) are published once, in time order, keyed by
aggregate, to the four department topics. Each round, on a fresh database (migrated beforehand):
the KPI service's runtime (`shared.app.run_service`, as its lifespan runs it: consumer, gauges)
is timed from its start until its consumer group has committed every partition's end offset
(its inbox then holds the id of every event it counted as handled, and it counted the rest as
ignored, which is checked: the engagements other than downloads move no KPI); the raw side, a
consumer with the same options in a new group, from its start until it has parsed N messages.
Events/s, median over rounds (which side goes first rotates). Target: KPI >= 25% of raw.

Two floors are measured in the same rounds, each a plain consumer in a new group, with the raw
driver (sqlite3, asyncpg) and one transaction per fetch, that validates every event as the
service does (its envelope and its data against the model its type names, in one validation:
`parse_event`; a bad one would go to the DLQ) and commits the offsets after the transaction:
- the inbox floor inserts every fetch's event ids into an inbox table and applies nothing: the
  ceiling of any ingest that validates and deduplicates durably (the ids of the events the
  service ignores, which change nothing, it skips as the service does);
- the applying floor also writes the least a read model of these events takes: each lead an
  event names, one row of a copy of `lead_facts` (the service's columns and indexes), upserted
  with its earliest event's time; and a count per day and event type added in a copy of
  `daily_totals`. It reads nothing back, keeps no other fact, no revision of a day, no reason:
  the ceiling of any ingest that also keeps facts and daily totals.
Their ratios to raw are those ceilings on this machine and database; the KPI service does all
the applying floor does, and more. Each side's time is also given in µs an event: wall, and the
CPU meanwhile of the event loop's thread, of this process (every thread: with SQLite, its
driver's too) and of the machine (every process: the broker, PostgreSQL). A side whose process
CPU is close to its wall time runs on one core at a time. The machine's CPU an event also
bounds a side on every core at once, however well it overlapped its parts: printed for the KPI
service and the applying floor.

    .venv/bin/python -m bench.kpi_ingest [--db sqlite|postgres|both] [--events 50000]
                                         [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select
from sqlalchemy.dialects import sqlite

from baton.broker import EmbeddedBroker
from bench.fleet import (
    SECRET,
    Stopwatch,
    Took,
    add_database_option,
    asyncpg_dsn,
    chosen_databases,
    copy_tables,
    database,
    print_ratios,
    sqlite_path,
    sqlite_writer,
)
from services.kpi.app import SPEC as KPI
from services.kpi.models import LeadFact
from services.kpi.settings import Settings
from shared.app import run_service
from shared.bus import connection_options, create_consumer, create_producer, ensure_topics
from shared.db import create_engine, driver_value
from shared.events import (
    CONTENT_TYPE,
    CampaignCostRecorded,
    ChurnRisk,
    Contact,
    ContractRenewed,
    CustomerChurned,
    CustomerOnboarded,
    DealLost,
    DealWon,
    Envelope,
    EnvelopeAttributes,
    EventData,
    LeadAccepted,
    LeadCaptured,
    LeadContacted,
    LeadDisqualified,
    LeadEngaged,
    LeadQualified,
    LeadRecycled,
    LeadResponseSlaBreached,
    LeadSource,
    MqlRule,
    NpsRecorded,
    OpportunityAccepted,
    OpportunityCreated,
    OpportunityNeglected,
    UpsellWon,
    new_event,
    parse_event,
)
from shared.inbox import InboxRow, handler_of
from shared.metrics import ServiceMetrics
from shared.migrations import upgrade
from shared.settings import ALL_TOPICS, BatonSettings, topic_of

TARGET = 0.25
SQLITE_DIALECT = sqlite.dialect()
SIDES = ("kpi", "applying", "floor", "raw")  # measured in turn, each round another first
POLL_S = 0.05
TOPICS = tuple(
    topic_of(s) for s in ("marketing", "inside_sales", "field_sales", "customer_success")
)
SOURCES: tuple[LeadSource, ...] = LeadSource.__args__  # type: ignore[attr-defined]
ACTIVITIES = ("page_view", "content_download", "email_click", "webinar_attended", "demo_request")
REASONS = ("no budget this year", "timing", "student", "competitor chosen", "price")
H, D = timedelta(hours=1), timedelta(days=1)


def made_at(rng: random.Random, when: datetime) -> uuid.UUID:
    """An id as a service makes it (`shared.ids`: a UUIDv7) at `when`, its random bits `rng`'s.

    A service makes an event's id when it emits the event, and a lead's (an opportunity's, an
    account's) when it takes it in: in production the KPI service reads ids about in the order
    they were made, and its inbox's and facts' keys grow at their ends. Ids made while the
    funnel is generated, its events then sorted by their times, would reach it in a random
    order no service emits."""
    millis = int(when.timestamp() * 1000)
    return uuid.UUID(
        int=millis << 80 | 0x7 << 76 | rng.getrandbits(12) << 64 | 0b10 << 62 | rng.getrandbits(62)
    )


def journey(rng: random.Random, start: datetime, campaigns: list[uuid.UUID]) -> list[Envelope]:
    """One lead's events through the departments, each at its business time (and its ids made
    then: `made_at`)."""
    lead, source = made_at(rng, start), rng.choice(SOURCES)
    campaign = rng.choice(campaigns) if rng.random() < 0.6 else None
    person = {"email": f"{lead.hex[:12]}@example.jp", "name": "Lead", "company": "Bench KK"}
    rep, owner = made_at(rng, start), made_at(rng, start)
    t = start
    script: list[tuple[EventData, datetime]] = [
        (LeadCaptured(lead_id=lead, source=source, campaign_id=campaign, **person), t)
    ]
    for touch in range(1, rng.randint(2, 5)):
        t += rng.randint(1, 48) * H
        activity = rng.choice(ACTIVITIES)
        engaged = LeadEngaged(
            lead_id=lead, activity=activity, points=10, score=10 * touch, touches=touch
        )
        script.append((engaged, t))
    if rng.random() < 0.5:
        rule = MqlRule(min_score=80, min_touches=3)
        qualified = LeadQualified(
            lead_id=lead,
            source=source,
            campaign_id=campaign,
            score=85,
            touches=3,
            rule=rule,
            **person,
        )
        t += rng.randint(1, 72) * H
        script += [(qualified, t), (LeadAccepted(lead_id=lead, rep_id=rep, respond_by=t + D), t)]
        if rng.random() < 0.15:
            script.append(
                (LeadResponseSlaBreached(lead_id=lead, rep_id=rep, respond_by=t + D), t + D)
            )
        for n in range(rng.randint(1, 3)):
            t += rng.randint(1, 30) * H
            contacted = LeadContacted(
                lead_id=lead, rep_id=rep, channel="call", outcome="connected", first_contact=n == 0
            )
            script.append((contacted, t))
        t += rng.randint(1, 10) * D
        outcome = rng.random()
        if outcome < 0.35:
            script.append((LeadRecycled(lead_id=lead, reason=rng.choice(REASONS)), t))
        elif outcome < 0.6:
            script.append((LeadDisqualified(lead_id=lead, reason=rng.choice(REASONS)), t))
        else:
            script += opportunity(rng, lead, rep, owner, t)
    return [
        new_event(data, time=when, correlation_id=str(lead), event_id=made_at(rng, when))
        for data, when in script
        if when <= datetime.now(UTC)
    ]


def opportunity(
    rng: random.Random, lead: uuid.UUID, rep: uuid.UUID, owner: uuid.UUID, t: datetime
) -> list[tuple[EventData, datetime]]:
    """An SQL's events: created, accepted (perhaps neglected first), won or lost, and after."""
    opp, amount = made_at(rng, t), rng.randrange(10, 500) * 100_000
    contact = Contact(name="Lead", email="lead@example.jp")
    created = OpportunityCreated(
        opportunity_id=opp,
        lead_id=lead,
        company="Bench KK",
        contact=contact,
        estimated_amount=amount,
        currency="JPY",
        rep_id=rep,
    )
    script: list[tuple[EventData, datetime]] = [(created, t)]
    if rng.random() < 0.15:
        t += 2 * D
        neglected = OpportunityNeglected(opportunity_id=opp, lead_id=lead, accept_by=t)
        script.append((neglected, t))
    t += rng.randint(1, 40) * H
    script.append((OpportunityAccepted(opportunity_id=opp, lead_id=lead, owner_id=owner), t))
    t += rng.randint(5, 40) * D
    if rng.random() < 0.55:
        return [*script, (DealLost(opportunity_id=opp, lead_id=lead, reason="price"), t)]
    mrr, account = amount // 12, made_at(rng, t)
    won = DealWon(
        opportunity_id=opp,
        lead_id=lead,
        company="Bench KK",
        amount=amount,
        currency="JPY",
        mrr=mrr,
        term_months=12,
        contract_start=t.date(),
        owner_id=owner,
    )
    script.append((won, t))
    t += rng.randint(5, 30) * D
    onboarded = CustomerOnboarded(account_id=account, opportunity_id=opp, lead_id=lead)
    script += [(onboarded, t), (NpsRecorded(account_id=account, score=rng.randint(0, 10)), t + D)]
    if rng.random() < 0.2:
        upsell = UpsellWon(account_id=account, mrr_delta=mrr // 5, currency="JPY", product="Pro")
        script.append((upsell, t + 20 * D))
    if rng.random() < 0.15:
        risk = ChurnRisk(
            account_id=account,
            lead_id=lead,
            health_score=30,
            band="red",
            reasons=["low usage"],
            mrr_at_risk=mrr,
            currency="JPY",
        )
        script.append((risk, t + 30 * D))
        if rng.random() < 0.5:
            churned = CustomerChurned(account_id=account, mrr_lost=mrr, reason="budget cut")
            script.append((churned, t + 40 * D))
    elif rng.random() < 0.3:
        renewed = ContractRenewed(account_id=account, mrr=mrr + 10_000, previous_mrr=mrr)
        script.append((renewed, t + 60 * D))
    return script


def funnel(count: int, seed: int = 2026) -> list[Envelope]:
    """`count` events of leads captured over the last 180 days (and campaign costs), by time."""
    rng, now = random.Random(seed), datetime.now(UTC)
    campaigns = [made_at(rng, now - timedelta(days=181)) for _ in range(20)]
    events: list[Envelope] = []
    while len(events) < count:
        start = now - timedelta(seconds=rng.randrange(180 * 86_400))
        events += journey(rng, start, campaigns)
        if rng.random() < 0.01:
            day = start.date()
            cost = CampaignCostRecorded(
                campaign_id=rng.choice(campaigns),
                channel=rng.choice(SOURCES),
                amount=rng.randrange(1, 50) * 100_000,
                currency="JPY",
                period_start=day,
                period_end=min(day + timedelta(days=6), date.today()),
            )
            events.append(new_event(cost, time=start, event_id=made_at(rng, start)))
    return sorted(events[:count], key=lambda e: e.time)


async def publish(bootstrap: str, events: list[Envelope]) -> dict[TopicPartition, int]:
    """Publish `events` as the services' relays would; the end offset of every partition."""
    settings = BatonSettings(kafka_bootstrap=bootstrap, kafka_idempotence=False)
    await ensure_topics(settings, ALL_TOPICS)
    producer = create_producer(settings)
    await producer.start()
    try:
        pending = [
            await producer.send(
                topic_of(e.source.rsplit("/", 1)[1]),
                value=e.to_json(),
                key=e.partitionkey.encode(),
                headers=[("content-type", CONTENT_TYPE.encode()), ("ce_type", e.type.encode())],
            )
            for e in events
        ]
        sent = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for meta in sent:  # (the embedded broker's ListOffsets lags: the acks tell the truth)
        tp = TopicPartition(meta.topic, meta.partition)
        ends[tp] = max(ends.get(tp, 0), meta.offset + 1)
    if sum(ends.values()) != len(events):
        raise RuntimeError(f"published {len(events)} events, the topics hold {ends}")
    return ends


def handled_by_kpi(envelope: EnvelopeAttributes, data: EventData) -> bool:
    """Whether the KPI service handles the event, rather than ignore it (an event of a type it
    has no handler for, or one its handler does not want: `shared.inbox.handler_of`)."""
    return handler_of(KPI.handlers, envelope, data) is not None


def outcomes(metrics: ServiceMetrics) -> Counter[str]:
    """The events a service counted, by outcome (handled, ignored, duplicate, ...)."""
    counted: Counter[str] = Counter()
    for (_, outcome), count in metrics.events_counted().items():
        counted[outcome] += count
    return counted


async def time_kpi(settings: Settings, ends: dict[TopicPartition, int]) -> Took:
    """The time from the KPI consumer's first fetch (its group joined) until the group has
    committed every end offset."""
    engine = create_engine(settings.db_url)
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    metrics = ServiceMetrics("kpi")
    try:
        async with run_service(KPI, settings, metrics) as runtime:
            assert runtime.consumer is not None
            await runtime.consumer.assigned.wait()
            stopwatch = Stopwatch()
            while True:
                committed = await admin.list_consumer_group_offsets(
                    settings.group_id, partitions=list(ends)
                )
                if all(tp in committed and committed[tp].offset >= e for tp, e in ends.items()):
                    took = stopwatch.took()
                    break
                await asyncio.sleep(POLL_S)
        async with engine.connect() as connection:
            inbox = select(func.count()).select_from(InboxRow)
            handled = (await connection.execute(inbox)).scalar()
        counted = outcomes(metrics)
        if handled != counted["handled"] or counted.total() != sum(ends.values()):
            raise RuntimeError(f"the inbox holds {handled} events, the service counted {counted}")
        return took
    finally:
        await admin.close()
        await engine.dispose()


Batch = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


async def time_consumer(
    settings: Settings,
    group: str,
    count: int,
    handle: Callable[[AIOKafkaConsumer, Batch], Awaitable[int]],
) -> Took:
    """The time a plain consumer in a new group takes, from its first fetch, until `handle` has
    handled `count` events (it says how many of each fetch it handled)."""
    consumer = create_consumer(settings, f"bench.{group}.{uuid.uuid4().hex[:8]}")
    consumer.subscribe(list(TOPICS))
    await consumer.start()
    try:
        handled, stopwatch = 0, None
        while handled < count:
            batch = await consumer.getmany(timeout_ms=500, max_records=settings.consumer_batch_size)
            if stopwatch is None and consumer.assignment():
                stopwatch = Stopwatch()
            handled += await handle(consumer, batch)
        assert stopwatch is not None
        return stopwatch.took()
    finally:
        await consumer.stop()


async def time_raw(settings: Settings, count: int) -> Took:
    """The time the raw side takes to parse `count` events."""

    async def parse(_consumer: AIOKafkaConsumer, batch: Batch) -> int:
        return sum(
            len([orjson.loads(r.value) for r in records if r.value is not None])
            for records in batch.values()
        )

    return await time_consumer(settings, "raw", count, parse)


class FloorStore:
    """Where a floor writes, with the raw driver (sqlite3 on SQLite, asyncpg on PostgreSQL), one
    transaction per fetch: its inbox (event ids in a table of their own) and, for the applying
    floor, the least a read model takes: each lead an event names, one row in a copy of
    `lead_facts` (its earliest event's time; the service's columns and indexes), and a count per
    day and event type added in a copy of `daily_totals`."""

    INBOX_COLUMNS = "(event_id, event_type, source, occurred_at, handled_at)"
    FACTS = "floor_lead_facts"
    TOTALS = "floor_daily_totals"

    def __init__(self, url: str, *, applying: bool) -> None:
        self.postgres = url.startswith("postgresql")
        self.url = url
        self.applying = applying
        # (each floor an inbox of its own: the other's, in the round's database, holds every id)
        self.inbox = "applying_floor_inbox" if applying else "floor_inbox"
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def open(self) -> None:
        create = (
            f"CREATE TABLE {self.inbox} (event_id varchar(36) PRIMARY KEY, "
            "event_type varchar(100), source varchar(100), occurred_at text, handled_at text)"
        )
        if self.applying:  # (the KPI service's tables are there: the round migrated them)
            await copy_tables(self.url, [("lead_facts", self.FACTS), ("daily_totals", self.TOTALS)])
        if self.postgres:
            self._pg = await asyncpg.connect(asyncpg_dsn(self.url))
            await self._pg.execute(create)
        else:
            self._sqlite = sqlite_writer(sqlite_path(self.url))
            self._sqlite.execute(create)

    async def add(
        self,
        rows: list[tuple[str, str, str, str, str]],
        facts: dict[str, datetime],
        totals: Counter[tuple[date, str]],
    ) -> None:
        """The inbox's `rows`; if applying, each lead of `facts` at its time (the earliest
        stays) and `totals` (per day and event type) added. (An event recorded already would
        fail the transaction, as it fails the service's when it has handled a fetch ahead; the
        topics hold none.)"""
        if self._pg is not None:
            statement = f"INSERT INTO {self.inbox} {self.INBOX_COLUMNS} VALUES ($1, $2, $3, $4, $5)"
            async with self._pg.transaction():
                await self._pg.executemany(statement, rows)
                if self.applying:
                    await self._apply_on_postgres(self._pg, facts, totals)
        elif self._sqlite is not None:
            statement = f"INSERT INTO {self.inbox} {self.INBOX_COLUMNS} VALUES (?, ?, ?, ?, ?)"
            self._sqlite.execute("BEGIN IMMEDIATE")
            self._sqlite.executemany(statement, rows)
            if self.applying:
                self._apply_on_sqlite(self._sqlite, facts, totals)
            self._sqlite.execute("COMMIT")

    async def _apply_on_postgres(
        self,
        connection: asyncpg.Connection,
        facts: dict[str, datetime],
        totals: Counter[tuple[date, str]],
    ) -> None:
        leads = sorted(facts)
        await connection.execute(
            f"INSERT INTO {self.FACTS} (lead_id, source, campaign_id, captured_at, downloads) "
            "SELECT l, '', '', a, '{}'::json FROM unnest($1::text[], $2::timestamptz[]) AS u(l, a) "
            f"ON CONFLICT (lead_id) DO UPDATE SET captured_at = "
            f"LEAST({self.FACTS}.captured_at, excluded.captured_at)",
            leads,
            [facts[lead] for lead in leads],
        )
        keys = sorted(totals)
        await connection.execute(
            f"INSERT INTO {self.TOTALS} (day, metric, source, campaign_id, value) "
            "SELECT d, m, '', '', v "
            "FROM unnest($1::date[], $2::text[], $3::bigint[]) AS u(d, m, v) "
            "ON CONFLICT (day, metric, source, campaign_id) DO UPDATE SET "
            f"value = {self.TOTALS}.value + excluded.value",
            [day for day, _ in keys],
            [metric for _, metric in keys],
            [totals[key] for key in keys],
        )

    def _apply_on_sqlite(
        self,
        connection: sqlite3.Connection,
        facts: dict[str, datetime],
        totals: Counter[tuple[date, str]],
    ) -> None:
        # Times as the service stores them on SQLite (its column's own bind processor).
        dialect, column = SQLITE_DIALECT, LeadFact.__table__.c.captured_at
        connection.executemany(
            f"INSERT INTO {self.FACTS} (lead_id, source, campaign_id, captured_at, downloads) "
            "VALUES (?, '', '', ?, '{}') ON CONFLICT (lead_id) DO UPDATE SET captured_at = "
            f"coalesce(min({self.FACTS}.captured_at, excluded.captured_at), excluded.captured_at)",
            [(lead, driver_value(dialect, column, facts[lead])) for lead in sorted(facts)],
        )
        connection.executemany(
            f"INSERT INTO {self.TOTALS} (day, metric, source, campaign_id, value) "
            "VALUES (?, ?, '', '', ?) ON CONFLICT (day, metric, source, campaign_id) DO UPDATE "
            f"SET value = {self.TOTALS}.value + excluded.value",
            [(day.isoformat(), metric, totals[day, metric]) for day, metric in sorted(totals)],
        )

    async def close(self) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()


async def time_floor(settings: Settings, count: int, *, applying: bool) -> Took:
    """The time a floor takes to apply `count` events: each validated as the service validates
    it (envelope and data at once), every fetch's event ids inserted into an inbox table (and,
    for the applying floor, the lead each names and a count per day and type; see `FloorStore`) and
    committed, then the offsets committed. The events the service ignores (`handled_by_kpi`)
    are validated, and skipped as it skips them."""

    async def apply(consumer: AIOKafkaConsumer, batch: Batch) -> int:
        rows, handled_at = [], datetime.now(UTC).isoformat()
        facts: dict[str, datetime] = {}
        totals: Counter[tuple[date, str]] = Counter()
        for records in batch.values():
            for record in records:
                event = parse_event(record.value or b"")
                if event is None:  # (none is here; the service reads it again, to say why)
                    raise RuntimeError(f"an unreadable event at offset {record.offset}")
                envelope, data = event
                if not handled_by_kpi(envelope, data):
                    continue
                at = envelope.time
                rows.append(
                    (str(envelope.id), envelope.type, envelope.source, at.isoformat(), handled_at)
                )
                if applying:
                    if (lead := data.__dict__.get("lead_id")) is not None:
                        lead = str(lead)
                        if lead not in facts or at < facts[lead]:
                            facts[lead] = at
                    totals[at.date(), envelope.type] += 1
        if rows:
            await store.add(rows, facts, totals)
        if batch:
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        return sum(map(len, batch.values()))

    store = FloorStore(settings.db_url, applying=applying)
    await store.open()
    try:
        return await time_consumer(settings, "applying" if applying else "floor", count, apply)
    finally:
        await store.close()


async def one_round(
    url: str, bootstrap: str, tmp: Path, ends: dict[TopicPartition, int], first: str
) -> dict[str, Took]:
    """The time of each side (the KPI service, the applying floor, the floor, the raw consumer)
    on a fresh database, migrated first (`first` measured first)."""
    settings = Settings(
        database_url=url,
        kafka_bootstrap=bootstrap,
        kafka_idempotence=False,
        data_dir=tmp,
        jwt_secret=SECRET,
        consumer_group_suffix=f"-bench-{uuid.uuid4().hex[:8]}",
    )
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine, "kpi", KPI.migrations)
    finally:
        await engine.dispose()
    count = sum(ends.values())
    sides = {
        "kpi": lambda: time_kpi(settings, ends),
        "applying": lambda: time_floor(settings, count, applying=True),
        "floor": lambda: time_floor(settings, count, applying=False),
        "raw": lambda: time_raw(settings, count),
    }
    took = {}
    for side in (first, *(side for side in sides if side != first)):
        took[side] = await sides[side]()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dbs = chosen_databases(args)
    results: dict[str, tuple[float, float]] = {}
    floors: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, tuple[float, ...]]] = {}  # µs an event, by side
    with (
        tempfile.TemporaryDirectory(prefix="baton-bench-") as name,
        EmbeddedBroker(log_file=Path(name) / "broker.log") as broker,
    ):
        # (the events are not kept: the process they would fill is the one measured)
        ends = uvloop.run(publish(broker.bootstrap, funnel(args.events)))
        gc.collect()
        count = sum(ends.values())
        for db in dbs:
            rounds = []
            for n in range(args.rounds):
                first = SIDES[n % len(SIDES)]
                with database(db, Path(name), "kpi") as url:
                    took = uvloop.run(one_round(url, broker.bootstrap, Path(name), ends, first))
                rounds.append(took)
                print(
                    f"{db} round {n + 1}: "
                    + ", ".join(f"{side} {count / took[side].wall:,.0f}/s" for side in SIDES),
                    file=sys.stderr,
                )
            median = {
                side: statistics.median(count / r[side].wall for r in rounds) for side in SIDES
            }
            results[db] = (median["kpi"], median["raw"])
            floors[db] = {side: median[side] for side in ("applying", "floor")}
            cpu[db] = {side: cpu_per_event([r[side] for r in rounds], count) for side in SIDES}
    print_ratios(
        f"KPI ingest, {args.events:,} funnel events, median of {args.rounds} rounds",
        ("KPI events/s", "raw events/s"),
        results,
        TARGET,
    )
    print("floors (raw driver; consume, validate envelope and data, one transaction per fetch):")
    print(f"{'database':<10}{'floor':>10}{'events/s':>12}{'of raw':>8}{'KPI of it':>11}")
    for db, rates in floors.items():
        kpi, raw = results[db]
        for side, label in (("floor", "inbox"), ("applying", "applying")):
            rate = rates[side]
            print(f"{db:<10}{label:>10}{rate:>12,.0f}{rate / raw:>8.1%}{kpi / rate:>11.0%}")
    print(
        "µs an event (medians): wall; CPU of the event loop's thread, of this process (every "
        "thread), of the machine (every process)"
    )
    print(f"{'database':<10}{'side':>10}{'wall':>9}{'loop':>9}{'process':>9}{'machine':>9}")
    labels = {"kpi": "kpi", "applying": "applying", "floor": "inbox", "raw": "raw"}
    for db, sides in cpu.items():
        for side, label in labels.items():
            print(f"{db:<10}{label:>10}" + "".join(f"{value:>9.1f}" for value in sides[side]))
    for db, sides in cpu.items():
        if len(sides["kpi"]) < 4:  # (the machine's CPU is not known here)
            continue
        # Each side's work, its machine CPU an event, spread over every core at once: the most
        # it could reach however well it overlapped its parts.
        cores = os.cpu_count() or 1
        raw = results[db][1]
        bounds = {side: cores * 1e6 / sides[side][3] for side in ("kpi", "applying")}
        print(
            f"{db:<10}machine's CPU on {cores} cores: the KPI service at most "
            f"{bounds['kpi']:,.0f} ev/s ({bounds['kpi'] / raw:.1%} of raw), the applying floor "
            f"{bounds['applying']:,.0f} ({bounds['applying'] / raw:.1%})"
        )


def cpu_per_event(took: list[Took], count: int) -> tuple[float, ...]:
    """Medians over rounds, in µs an event: wall, the loop's CPU, the process's, and (where the
    system tells) the machine's."""
    per_event = [
        [t.wall, t.loop_cpu, t.process_cpu] + ([t.machine_cpu] if t.machine_cpu is not None else [])
        for t in took
    ]
    columns = min(len(figures) for figures in per_event)
    return tuple(
        statistics.median(figures[i] for figures in per_event) / count * 1e6 for i in range(columns)
    )


if __name__ == "__main__":
    main()
