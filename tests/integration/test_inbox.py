"""The inbox on a real broker: duplicates, poison messages, replicas of one consumer group, a
fetch in one transaction with the service's transaction work, a consumer that goes on after a
fault of its own."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from sqlalchemy import Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from baton.broker import EmbeddedBroker
from services.inside_sales.app import create_app as create_inside_sales
from services.inside_sales.models import QueueItem
from shared import logs
from shared.bus import ensure_topics
from shared.db import PlumbingBase, create_engine, session_factory
from shared.events import (
    CONTENT_TYPE,
    Envelope,
    EnvelopeAttributes,
    EventData,
    LeadQualified,
    new_event,
)
from shared.inbox import EventContext, InboxConsumer, InboxRow, Selective
from shared.metrics import ServiceMetrics
from shared.outbox import Outbox
from shared.runtime import Runtime
from shared.settings import ALL_TOPICS, DLQ_TOPIC, BatonSettings, ServiceSettings
from tests.helpers import eventually, make_settings


def mql(lead_id: uuid.UUID | None = None) -> Envelope:
    lead = lead_id or uuid.uuid4()
    return new_event(
        LeadQualified(
            lead_id=lead,
            email=f"{lead.hex[:8]}@example.jp",
            name="Ken Sato",
            company="Sato Seiki",
            title="Plant manager",
            source="seminar",
            campaign_id=None,
            score=92,
            touches=4,
            rule={"min_score": 80, "min_touches": 3},
        ),
        time=datetime(2026, 4, 1, 9, 30, tzinfo=UTC),
    )


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[Runtime]:
    """Run the app's lifespan (relay, consumer) without serving HTTP."""
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        assert runtime.consumer is not None
        await asyncio.wait_for(runtime.consumer.assigned.wait(), 30)
        yield runtime


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    plain = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await plain.start()
    try:
        yield plain
    finally:
        await plain.stop()


async def publish(plain: AIOKafkaProducer, envelope: Envelope) -> None:
    await plain.send_and_wait(
        "baton.marketing",
        envelope.to_json(),
        key=envelope.partitionkey.encode(),
        headers=[("content-type", CONTENT_TYPE.encode())],
    )


async def count(settings: ServiceSettings, query: Any) -> int:
    engine = create_engine(settings.db_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())
    finally:
        await engine.dispose()


def queue_items(lead_ids: list[str]) -> Any:
    return select(func.count()).select_from(QueueItem).where(QueueItem.lead_id.in_(lead_ids))


async def test_same_event_twice_has_one_effect(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        "inside_sales",
        database_url=await database_url("inside_sales"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    event = mql()
    async with running(create_inside_sales(settings)), producer(broker.bootstrap) as plain:
        await publish(plain, event)
        await publish(plain, event)
        follow_up = mql()
        await publish(plain, follow_up)  # once this is handled, both copies have been seen
        ids = [str(event.data["lead_id"]), str(follow_up.data["lead_id"])]
        await eventually(lambda: _equals(settings, queue_items(ids), 2))
        assert await count(settings, queue_items(ids[:1])) == 1
        inbox = select(func.count()).where(InboxRow.event_id == str(event.id))
        assert await count(settings, inbox) == 1
        # The offsets are committed as the consumer goes on, not only once it stops.
        await eventually(lambda: _committed_to_the_end(broker.bootstrap, settings.group_id))


async def _committed_to_the_end(bootstrap: str, group_id: str) -> bool:
    """Whether `group_id` has committed every partition of `baton.marketing` to its end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    plain = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await plain.start()
    try:
        partitions = [
            TopicPartition("baton.marketing", p)
            for p in plain.partitions_for_topic("baton.marketing") or ()
        ]
        ends = await plain.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group_id, partitions=partitions)
        return all(
            end == 0 or (tp in committed and committed[tp].offset >= end)
            for tp, end in ends.items()
        )
    finally:
        await plain.stop()
        await admin.close()


async def _equals(settings: ServiceSettings, query: Any, expected: int) -> bool:
    return await count(settings, query) == expected


async def test_poison_goes_to_dlq_and_the_next_event_is_handled(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        "inside_sales",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'is.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    marker = uuid.uuid4().hex
    dlq = AIOKafkaConsumer(
        DLQ_TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="latest", group_id=None
    )
    await dlq.start()
    try:
        await dlq.seek_to_end()
        bad_data = mql().model_copy(update={"data": {"lead_id": "nope"}})
        good = mql()
        async with running(create_inside_sales(settings)), producer(broker.bootstrap) as plain:
            await plain.send_and_wait("baton.marketing", f"not json {marker}".encode())
            await publish(plain, bad_data)
            await publish(plain, good)
            ids = [str(good.data["lead_id"])]
            await eventually(lambda: _equals(settings, queue_items(ids), 1))
        dead = await _read_dlq(dlq, {marker, str(bad_data.id)})
    finally:
        await dlq.stop()
    garbage = next(d for d in dead if marker in d.get("payload", ""))
    assert garbage["service"] == "inside_sales"
    assert garbage["kind"] == "unparseable"
    assert garbage["topic"] == "baton.marketing"
    invalid = next(d for d in dead if str(bad_data.id) in d.get("payload", ""))
    assert "lead_id" in invalid["error"]


async def _read_dlq(dlq: AIOKafkaConsumer, wanted: set[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        batch = await dlq.getmany(timeout_ms=500)
        for messages in batch.values():
            for message in messages:
                record = orjson.loads(message.value or b"{}")
                if any(w in record.get("payload", "") for w in wanted):
                    found.append(record)
        if len(found) >= len(wanted):
            return found
    raise AssertionError(f"DLQ records not found: {wanted}; found {found}")


async def test_two_replicas_handle_each_event_once(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> None:
    url = await database_url("inside_sales")
    # A group of its own: the embedded broker can keep a departed leader of a group whose
    # members all left during a rebalance, and later members of that group never sync.
    group_suffix = f"-replicas-{uuid.uuid4().hex[:8]}"
    settings = [
        make_settings(
            "inside_sales",
            database_url=url,
            bootstrap=broker.bootstrap,
            data_dir=tmp_path,
            consumer_group_suffix=group_suffix,
        )
        for _ in range(2)
    ]
    events = [mql() for _ in range(200)]
    ids = [str(e.data["lead_id"]) for e in events]
    apps = [create_inside_sales(s) for s in settings]
    async with _replicas(apps) as runtimes, producer(broker.bootstrap) as plain:
        for event in events:
            await publish(plain, event)
        await eventually(lambda: _equals(settings[0], queue_items(ids), 200), timeout=60)
        await asyncio.sleep(1.0)
        handled = [_handled(r) for r in runtimes]
    assert await count(settings[0], queue_items(ids)) == 200
    ours = select(func.count()).where(InboxRow.event_id.in_([str(e.id) for e in events]))
    assert await count(settings[0], ours) == 200
    # A new group reads the topic from the start, older tests' events included: across both
    # replicas, every event was applied exactly once (one inbox row each, fresh database).
    every = select(func.count()).select_from(InboxRow)
    assert sum(handled) == await count(settings[0], every), handled
    assert all(h > 0 for h in handled), f"one replica got no partition: {handled}"


def _handled(runtime: Runtime) -> int:
    sample = runtime.metrics.registry.get_sample_value(
        "baton_events_handled_total", {"type": "baton.LeadQualified.v1", "outcome": "handled"}
    )
    return int(sample or 0)


@contextlib.asynccontextmanager
async def _replicas(apps: list[FastAPI]) -> AsyncIterator[list[Runtime]]:
    async with contextlib.AsyncExitStack() as stack:
        runtimes = []
        for app in apps:
            runtimes.append(await stack.enter_async_context(running(app)))
        yield runtimes


class _TestBase(DeclarativeBase):
    pass


class Applied(_TestBase):
    """A lead that the test's handler applied (one row per application)."""

    __tablename__ = "applied"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(String(36))


class AppliedLeads:
    """Transaction work: the handled leads, written at the end of their transaction."""

    def __init__(self, session: AsyncSession, prepared: list[list[str]]) -> None:
        self.session = session
        self.prepared = prepared
        self.leads: list[str] = []

    async def prepare(self, events: Sequence[tuple[EnvelopeAttributes, EventData]]) -> None:
        self.prepared.append([data.aggregate_id() for _, data in events])

    async def finish(self) -> None:
        self.session.add_all(Applied(lead_id=lead) for lead in self.leads)


async def apply_unless_poison(ctx: EventContext, event: LeadQualified) -> None:
    if event.name == "Poison":
        raise RuntimeError("a handler that always fails on this event")
    # What it logs carries the event's id and journey (else it fails, and the event is lost).
    ids = logs.context()
    assert (ids["event_id"], ids["correlation_id"]) == (
        ctx.envelope.event_id,
        ctx.envelope.correlationid,
    )
    assert isinstance(ctx.work, AppliedLeads)
    ctx.work.leads.append(str(event.lead_id))


async def applying_service(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> tuple[ServiceSettings, AsyncEngine]:
    """The topics on `broker`, and settings and an engine for a consumer of them whose database
    has the plumbing and the test's tables."""
    await ensure_topics(BatonSettings(kafka_bootstrap=broker.bootstrap), ALL_TOPICS)
    settings = make_settings(
        "inside_sales", database_url=database_url, bootstrap=broker.bootstrap, data_dir=tmp_path
    )
    engine = create_engine(settings.db_url)
    async with engine.begin() as connection:
        await connection.run_sync(PlumbingBase.metadata.create_all)
        await connection.run_sync(_TestBase.metadata.create_all)
    return settings, engine


def applying_consumer(
    kind: type[InboxConsumer],
    settings: ServiceSettings,
    engine: AsyncEngine,
    prepared: list[list[str]],
    **options: Any,
) -> InboxConsumer:
    """A consumer of `baton.marketing` that applies LeadQualified (`apply_unless_poison`) with
    `AppliedLeads` as its transaction work."""
    return kind(
        settings,
        session_factory(engine),
        ("baton.marketing",),
        {LeadQualified.event_type(): apply_unless_poison},
        Outbox(settings.topic, settings.outbox_lanes),
        work=lambda session, _: AppliedLeads(session, prepared),
        **options,
    )


async def applied_and_recorded(engine: AsyncEngine) -> tuple[list[str], set[str]]:
    """The leads the test's handler applied, and the event ids in the inbox; then the engine
    is disposed of."""
    try:
        async with engine.connect() as connection:
            applied = (await connection.scalars(select(Applied.lead_id))).all()
            inbox = set((await connection.scalars(select(InboxRow.event_id))).all())
    finally:
        await engine.dispose()
    return list(applied), inbox


async def test_a_batch_applies_repeated_events_once_and_dead_letters_only_its_poison(
    own_broker: EmbeddedBroker, database_url: Any, tmp_path: Path
) -> None:
    settings, engine = await applying_service(
        own_broker, await database_url("inside_sales"), tmp_path
    )
    first, second, third, fourth, fifth = (mql() for _ in range(5))
    poison = mql().model_copy(update={"data": {**mql().data, "name": "Poison"}})
    unhandled = mql().model_copy(update={"type": "baton.LeadEngaged.v1"})
    marker = uuid.uuid4().hex
    # Each partition's events are there before the consumer starts: one fetch, applied in one
    # transaction, which the poison rolls back; then each partition's in one of its own.
    garbage_bytes = f"not json {marker}".encode()
    backlog = {
        0: [first, second, first, third],
        1: [fourth, poison, garbage_bytes, unhandled, fifth],
    }
    async with producer(own_broker.bootstrap) as plain:
        for partition, events in backlog.items():
            for event in events:
                value = event if isinstance(event, bytes) else event.to_json()
                await plain.send_and_wait("baton.marketing", value, key=b"k", partition=partition)
    prepared: list[list[str]] = []
    metrics = ServiceMetrics("inside_sales")
    consumer = applying_consumer(
        InboxConsumer, settings, engine, prepared, metrics=metrics, retry_backoff_s=0.01
    )
    dlq = AIOKafkaConsumer(
        DLQ_TOPIC, bootstrap_servers=own_broker.bootstrap, auto_offset_reset="earliest"
    )
    await dlq.start()
    consumer.start()
    try:
        dead = await _read_dlq(dlq, {str(poison.id), marker})
        applied_query = select(func.count()).select_from(Applied)
        await eventually(lambda: _equals(settings, applied_query, 5))
    finally:
        await consumer.stop()
        await dlq.stop()
    applied, inbox = await applied_and_recorded(engine)
    good = [first, second, third, fourth, fifth]
    assert sorted(applied) == sorted(str(e.data["lead_id"]) for e in good)
    assert inbox == {str(e.id) for e in good}
    both = sorted(str(e.data["lead_id"]) for e in (first, second, third, fourth, poison, fifth))
    assert [sorted(leads) for leads in prepared].count(both) == 1  # the fetch, rolled back
    assert [str(e.data["lead_id"]) for e in (first, second, third)] in prepared
    assert [str(e.data["lead_id"]) for e in (fourth, poison, fifth)] in prepared  # rolled back
    assert [str(fourth.data["lead_id"])] in prepared and [str(fifth.data["lead_id"])] in prepared
    failed = next(d for d in dead if str(poison.id) in d["payload"])
    garbage = next(d for d in dead if marker in d["payload"])
    assert (failed["kind"], garbage["kind"], garbage["partition"]) == ("failed", "unparseable", 1)
    handled = "baton_events_handled_total"
    sample = metrics.registry.get_sample_value
    assert sample(handled, {"type": "baton.LeadQualified.v1", "outcome": "duplicate"}) == 1
    assert sample(handled, {"type": "baton.LeadEngaged.v1", "outcome": "ignored"}) == 1


def scored_80_or_more(event: LeadQualified) -> bool:
    if event.score == 70:
        raise ValueError("a predicate with a bug")
    return event.score >= 80


async def test_an_event_its_handler_does_not_want_is_ignored_and_recorded_nowhere(
    own_broker: EmbeddedBroker, database_url: Any, tmp_path: Path
) -> None:
    """A `Selective` handler: the events of its type that it does not want are counted as
    ignored and recorded in no inbox, and the consumer moves on past them; those it wants are
    applied, and so is one it fails to tell about (its handler decides)."""
    settings, engine = await applying_service(
        own_broker, await database_url("inside_sales"), tmp_path
    )
    low = [
        e.model_copy(update={"data": {**e.data, "score": 60}}) for e in (mql() for _ in range(3))
    ]
    unsure = mql()  # (its score makes `scored_80_or_more` fail)
    taken = [mql(), unsure.model_copy(update={"data": {**unsure.data, "score": 70}}), mql()]
    async with producer(own_broker.bootstrap) as plain:
        for event in (low[0], taken[0], low[1], taken[1], low[2], taken[2]):
            await publish(plain, event)
    metrics = ServiceMetrics("inside_sales")
    prepared: list[list[str]] = []
    consumer = InboxConsumer(
        settings,
        session_factory(engine),
        ("baton.marketing",),
        {LeadQualified.event_type(): Selective(apply_unless_poison, scored_80_or_more)},
        Outbox(settings.topic, settings.outbox_lanes),
        metrics,
        work=lambda session, _: AppliedLeads(session, prepared),
    )
    ignored = {"type": "baton.LeadQualified.v1", "outcome": "ignored"}
    sample = metrics.registry.get_sample_value
    consumer.start()
    try:
        await eventually(lambda: _true(sample("baton_events_handled_total", ignored) == 3))
        await eventually(lambda: _equals(settings, select(func.count()).select_from(Applied), 3))
        await eventually(lambda: _true(consumer.lag() == 0))
    finally:
        await consumer.stop()
    applied, inbox = await applied_and_recorded(engine)
    assert sorted(applied) == sorted(str(e.data["lead_id"]) for e in taken)
    assert inbox == {str(e.id) for e in taken}
    assert sorted(lead for leads in prepared for lead in leads) == sorted(applied)


class _FailsOnce(InboxConsumer):
    """A consumer whose first fetch fails with an error that is not the broker's."""

    failed = False

    async def _apply_fetch(self, *args: Any) -> None:
        if not self.failed and args[1]:
            self.failed = True
            raise RuntimeError("a fault of the service's own")
        await super()._apply_fetch(*args)


async def test_the_consumer_goes_on_after_a_fault_of_its_own(
    own_broker: EmbeddedBroker, tmp_path: Path, caplog: Any
) -> None:
    settings, engine = await applying_service(
        own_broker, f"sqlite+aiosqlite:///{tmp_path / 'is.db'}", tmp_path
    )
    metrics = ServiceMetrics("inside_sales")
    consumer = applying_consumer(_FailsOnce, settings, engine, [], metrics=metrics)
    event = mql()
    consumer.start()
    try:
        async with producer(own_broker.bootstrap) as plain:
            await publish(plain, event)
        applied = select(func.count()).where(Applied.lead_id == str(event.data["lead_id"]))
        await eventually(lambda: _equals(settings, applied, 1))
    finally:
        await consumer.stop()
        await engine.dispose()
    assert isinstance(consumer, _FailsOnce) and consumer.failed
    assert "consumer failed unexpectedly; restarting" in caplog.text
    restarts = metrics.registry.get_sample_value
    assert restarts("baton_consumer_restarts_total", {"cause": "fault"}) == 1
    assert restarts("baton_consumer_restarts_total", {"cause": "broker"}) is None


class _HoldsItsFirstFetch(InboxConsumer):
    """A consumer whose first fetch of events waits, before it is applied, until `release` is
    set; it counts the fetches of events it has read (the next one read ahead meanwhile)."""

    def __init__(self, *args: Any, **options: Any) -> None:
        super().__init__(*args, **options)
        self.release = asyncio.Event()
        self.read_with_events = 0
        self.applied_with_events = 0

    async def _read_fetch(self, *args: Any) -> Any:
        fetch = await super()._read_fetch(*args)
        self.read_with_events += bool(fetch)
        return fetch

    async def _apply_fetch(self, *args: Any) -> None:
        if args[1]:
            await self.release.wait()
            self.applied_with_events += 1
        await super()._apply_fetch(*args)


async def test_a_fetch_read_ahead_when_the_consumer_stops_is_applied_by_the_next_one(
    own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The consumer reads its next fetch while it applies one. Stopped meanwhile, it applies
    the fetch in hand and commits it, and not the one read ahead: the group's next consumer
    fetches that again. Each event is applied once."""
    settings, engine = await applying_service(
        own_broker, f"sqlite+aiosqlite:///{tmp_path / 'is.db'}", tmp_path
    )
    settings = settings.model_copy(update={"consumer_batch_size": 5})
    events = [mql() for _ in range(20)]
    async with producer(own_broker.bootstrap) as plain:
        for event in events:
            await publish(plain, event)
    first = applying_consumer(_HoldsItsFirstFetch, settings, engine, [])
    assert isinstance(first, _HoldsItsFirstFetch)
    first.start()
    try:
        await eventually(lambda: _true(first.read_with_events == 2), timeout=30)
        stopping = asyncio.create_task(first.stop())
        await asyncio.sleep(0.2)
        first.release.set()
        await stopping
        assert first.applied_with_events == 1
        applied = select(func.count()).select_from(Applied)
        by_first = await count(settings, applied)
        assert 0 < by_first <= 5
        second = applying_consumer(InboxConsumer, settings, engine, [])
        second.start()
        try:
            await eventually(lambda: _equals(settings, applied, 20), timeout=60)
        finally:
            await second.stop()
        once = select(Applied.lead_id, func.count()).group_by(Applied.lead_id)
        async with session_factory(engine)() as session:
            per_lead = dict((await session.execute(once)).all())
    finally:
        first.release.set()
        await first.stop()
        await engine.dispose()
    assert per_lead == {str(e.data["lead_id"]): 1 for e in events}


async def _true(value: bool) -> bool:
    return value
