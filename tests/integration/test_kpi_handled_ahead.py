"""The KPI consumer handles a fetch while the fetch before writes (one writer: the
rows that fetch changed come from its work, not from the database, where they may not have
committed yet). The read model it leaves is the one applying each fetch in turn leaves: with
journeys spread over many fetches, events repeated within a fetch and in the next one, and
events recorded before, whose fetch is applied again the classic way, and so is the next; and
with an event whose handler fails, whose fetch is applied the classic way too."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, cast

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from baton.broker import EmbeddedBroker
from bench.kpi_ingest import handled_by_kpi
from bench.kpi_replay import Assigned, Fetch, fetches
from services.kpi.app import SPEC as KPI
from services.kpi.models import (
    DailyTotal,
    DayRevision,
    LeadFact,
    OpportunityFact,
    ReasonFact,
)
from services.kpi.settings import Settings
from shared.events import parse_event
from shared.inbox import EventContext, Handler, InboxConsumer, InboxRow, Selective, record_new
from shared.metrics import ServiceMetrics
from shared.outbox import Outbox
from tests.helpers import migrated_sessions

TABLES = (LeadFact, OpportunityFact, DailyTotal, ReasonFact, DayRevision)


def with_repeats(batches: list[Fetch]) -> list[Fetch]:
    """Every fifth fetch gets its first event again at its end (a repeat within the fetch) and
    the next fetch gets it too (a repeat in the next one); offsets go on as a partition's do."""
    out: list[Fetch] = []
    ends: dict[TopicPartition, int] = {}
    carried: ConsumerRecord[bytes, bytes] | None = None
    for n, batch in enumerate(batches):
        values = [
            (tp, [r.key for r in records], [r.value for r in records]) for tp, records in batch
        ]
        if carried is not None:
            tp, keys, vals = values[0]
            values[0] = (tp, [*keys, carried.key], [*vals, carried.value])
            carried = None
        if n % 5 == 0:
            tp, keys, vals = values[0]
            values[0] = (tp, [*keys, keys[0]], [*vals, vals[0]])
            carried = batch[0][1][0]
        rebuilt: Fetch = []
        for tp, keys, vals in values:
            records = []
            for key, value in zip(keys, vals, strict=True):
                offset = ends[tp] = ends.get(tp, -1) + 1
                assert key is not None and value is not None
                records.append(
                    ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 0, 0, [])
                )
            rebuilt.append((tp, records))
        out.append(rebuilt)
    return out


async def applied(
    sessions: async_sessionmaker[Any],
    batches: list[Fetch],
    recorded: list[Any],
    *,
    ahead: bool,
    handlers: Mapping[str, Handler | Selective] = KPI.handlers,
    settings: Settings | None = None,
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[tuple[str, str], float]]:
    """Every fetch applied by a KPI consumer (handling ahead or not), with the events
    `recorded` in the inbox first: each read model table's rows, and the events counted by
    type and outcome (and, as ("dlq", "sent"), those sent to the DLQ)."""
    async with sessions() as session, session.begin():
        await record_new(session, recorded)
    settings = settings or Settings()
    metrics = ServiceMetrics("kpi")
    consumer = InboxConsumer(
        settings,
        sessions,
        KPI.consumes,
        handlers,
        Outbox(settings.topic, settings.outbox_lanes),
        metrics,
        work=KPI.transaction_work,
        one_writer=ahead,
        retry_backoff_s=0,
    )
    assert consumer._ahead is ahead
    assigned: Any = Assigned({tp for batch in batches for tp, _ in batch})
    for batch in batches:
        await consumer._apply_fetch(assigned, await consumer._read_fetch(batch))
    await consumer._drain()
    await consumer.stop()  # (its DLQ producer, if it made one)
    rows = {}
    async with sessions() as session:
        for model in (*TABLES, InboxRow):
            table: Table = model.__table__  # type: ignore[assignment]
            columns = [c for c in table.c if c.name != "handled_at"]
            result = await session.execute(select(*columns))
            rows[table.name] = sorted(map(tuple, result.all()), key=repr)
    counted: dict[tuple[str, str], float] = dict(metrics.events_counted())
    counted["dlq", "sent"] = metrics.registry.get_sample_value("baton_dlq_events_total") or 0
    return rows, counted


def records_of(batches: list[Fetch]) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message of `batches`, in order."""
    return [record for batch in batches for _, of_partition in batch for record in of_partition]


def handled(record: ConsumerRecord[bytes, bytes]) -> bool:
    """Whether the KPI service handles the message's event, rather than ignore it."""
    event = parse_event(record.value or b"")
    assert event is not None
    return handled_by_kpi(*event)


async def test_handled_ahead_leaves_the_read_model_applying_in_turn_leaves(
    database_url: Any, caplog: pytest.LogCaptureFixture
) -> None:
    base = fetches(1_500, 40, Settings().kafka_partitions)
    batches = with_repeats(base)
    records = records_of(base)
    wanted = sum(map(handled, records))
    assert 1_000 < wanted < 1_500  # (the page views and clicks among the engagements: ignored)
    # Two events of a fetch in the middle recorded before: that fetch is applied again, and so
    # is the next (handled on rows of the one that failed). (Not a fetch before one whose
    # first event the next repeats: that one, applied the classic way, leaves no events in
    # hand to tell the repeat by, and the repeat makes the next fetch applied again too.)
    at = next(n for n in range(len(base) // 2, len(base)) if (n + 1) % 5)
    middle = [record for _, records in base[at] for record in records if handled(record)]
    recorded = [event[0] for r in middle[1:3] if (event := parse_event(r.value or b""))]
    assert len(recorded) == 2
    results = {}
    for ahead in (False, True):
        async with migrated_sessions(await database_url("kpi"), "kpi", KPI.migrations) as sessions:
            with caplog.at_level(logging.INFO, logger="shared.inbox"):
                results[ahead] = await applied(sessions, batches, recorded, ahead=ahead)
    (classic, classic_counts), (ahead_rows, ahead_counts) = results[False], results[True]
    assert len(classic["lead_facts"]) > 100 and len(classic["opportunity_facts"]) > 10
    assert len(classic["inbox"]) == wanted
    for table, rows in classic.items():
        assert ahead_rows[table] == rows, table
    assert ahead_counts == classic_counts
    outcomes: Counter[str] = Counter()
    for (_, outcome), n in classic_counts.items():
        outcomes[outcome] += int(n)
    # (each fifth fetch's first event again in it, and in the next one)
    repeats = [(1 + (n + 1 < len(batches)), base[n][0][1][0]) for n in range(0, len(batches), 5)]
    assert outcomes["duplicate"] == sum(n for n, r in repeats if handled(r)) + len(recorded)
    assert outcomes["ignored"] == 1_500 - wanted + sum(n for n, r in repeats if not handled(r))
    redone = [
        r for r in caplog.records if r.getMessage() == "a fetch handled ahead was not written"
    ]
    expected = "_RecordedAlready('an event of the transaction was recorded already')"
    assert [getattr(r, "error", None) for r in redone] == [expected]


def failing_on(event_id: str, handler: Handler | Selective) -> Handler | Selective:
    """`handler`, but failing on the event `event_id`."""
    if isinstance(handler, Selective):
        return Selective(cast(Handler, failing_on(event_id, handler.handle)), handler.wants)

    async def handle(ctx: EventContext, data: Any) -> None:
        if ctx.envelope.event_id == event_id:
            raise RuntimeError("a handler that fails")
        await handler(ctx, data)

    return handle


async def test_a_fetch_whose_handling_fails_is_applied_the_classic_way(
    database_url: Any, broker: EmbeddedBroker, topics: tuple[str, ...]
) -> None:
    """An event whose handler fails: handling its fetch ahead fails, and the fetch is applied
    the classic way (its partitions', then its events one by one; the event to the DLQ). The
    read model and the counts are those of applying each fetch in turn."""
    batches = fetches(400, 40, Settings().kafka_partitions)
    records = records_of(batches)
    poison = parse_event(next(filter(handled, records[120:])).value or b"")
    assert poison is not None
    poison_id = poison[0].event_id
    handlers = {name: failing_on(poison_id, handler) for name, handler in KPI.handlers.items()}
    results = {}
    for ahead in (False, True):
        async with migrated_sessions(await database_url("kpi"), "kpi", KPI.migrations) as sessions:
            settings = Settings(
                kafka_bootstrap=broker.bootstrap,
                kafka_idempotence=False,  # (as every test's producer on the embedded broker)
                consumer_max_attempts=1,
            )
            results[ahead] = await applied(
                sessions, batches, [], ahead=ahead, handlers=handlers, settings=settings
            )
    (classic, classic_counts), (ahead_rows, ahead_counts) = results[False], results[True]
    wanted = sum(map(handled, records))
    assert len(classic["inbox"]) == wanted - 1 and (poison_id,) not in classic["inbox"]
    for table, rows in classic.items():
        assert ahead_rows[table] == rows, table
    assert ahead_counts == classic_counts
    assert classic_counts["dlq", "sent"] == 1
