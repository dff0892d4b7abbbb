"""The outbox relay on a real broker: woken by commits, replicas side by side, replay."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import func, select, text, update

from baton.broker import EmbeddedBroker
from services.marketing.app import SPEC as MARKETING
from services.marketing.app import create_app as create_marketing
from shared.bus import create_producer, ensure_topics
from shared.db import create_engine, driver_connection, session_factory
from shared.metrics import ServiceMetrics
from shared.migrations import upgrade
from shared.outbox import (
    OutboxRelay,
    OutboxRow,
    lane_lock_class,
    lane_of,
    replay,
    send_rows,
)
from shared.settings import BatonSettings
from tests.helpers import auth, make_settings, serve, topic_tail


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    """Every message of `topic` from the beginning, once `expected` have arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        messages: list[Any] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(messages) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                messages.extend(records)
        await asyncio.sleep(0.5)  # anything extra (a duplicate) would arrive now
        for records in (await consumer.getmany(timeout_ms=500)).values():
            messages.extend(records)
        return messages
    finally:
        await consumer.stop()


async def test_relay_is_woken_by_the_commit(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    """With a 30 s poll interval, an event still goes out at once: the commit wakes the relay."""
    settings = make_settings(
        "marketing",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        outbox_poll_interval_s=30,
    )
    async with (
        topic_tail(broker.bootstrap, "baton.marketing") as consumer,
        serve(create_marketing(settings)) as c,
    ):
        await asyncio.sleep(0.5)  # the relay's first (empty) pass is behind it
        body = {
            "email": f"{uuid.uuid4().hex[:8]}@example.jp",
            "name": "Yui Mori",
            "company": "Mori Foods",
            "source": "content",
        }
        created = await c.post("/v1/leads", json=body, headers=auth("marketing:write"))
        lead_id = created.json()["id"]
        started = asyncio.get_running_loop().time()
        found = None
        while found is None and asyncio.get_running_loop().time() - started < 5:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    event = orjson.loads(record.value)
                    if event["subject"] == lead_id:
                        found = (record, event)
        assert found is not None, "the event was not published within 5 s"
        record, event = found
        assert event["type"] == "baton.LeadCaptured.v1"
        assert record.key == lead_id.encode()
        assert dict(record.headers)["content-type"] == b"application/cloudevents+json"


@pytest.mark.postgres
async def test_two_relays_on_one_postgres_database(
    broker: EmbeddedBroker, postgres: Any, tmp_path: Path
) -> None:
    """Two relays on one database: a lane another replica holds is skipped until it is free; no
    row is published twice, and each aggregate's rows keep their order."""
    url = await postgres.create()
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, url, batch=40, lanes=8)
    keys = [str(uuid.uuid4()) for _ in range(40)]
    await add_test_rows(sessions, topic, keys, range(50), settings.outbox_lanes)
    held = set(range(4))  # another replica is busy with lanes 0-3: both relays must skip them
    blocked = sum(1 for key in keys if lane_of(key, settings.outbox_lanes) in held) * 50
    relays = []
    for _ in range(2):
        relay_engine = create_engine(url)
        relays.append((OutboxRelay(settings, session_factory(relay_engine)), relay_engine))
    try:
        async with engine.connect() as holder:
            for lane in held:
                await holder.execute(
                    text("SELECT pg_advisory_lock(:cls, :lane)"),
                    {"cls": lane_lock_class("marketing"), "lane": lane},
                )
            for relay, _ in relays:
                relay.start()
            first = await read_topic(broker.bootstrap, topic, expected=2000 - blocked)
            await asyncio.sleep(1.0)  # time enough to publish a held lane, were it not held
            assert await pending_count(engine) == blocked
            assert {lane_of(orjson.loads(m.value)["key"], 8) for m in first}.isdisjoint(held)
            await holder.execute(text("SELECT pg_advisory_unlock_all()"))
            await holder.commit()
        messages = await read_topic(broker.bootstrap, topic, expected=2000)
    finally:
        for relay, relay_engine in relays:
            await relay.stop()
            await relay_engine.dispose()
    # (the relays' part first: a row left pending, or every row marked and what was read)
    pending = await pending_count(engine)
    assert pending == 0, f"{pending} rows still pending, {len(messages)} read"
    assert_each_once_in_order(messages, keys, 50)
    await engine.dispose()


async def test_a_woken_relay_lingers_and_sends_the_commits_of_that_time_together(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """The relay waits its linger before it reads: a commit made meanwhile goes out in the same
    run as the one that woke it."""
    topic, settings, engine, sessions = await relay_setup(
        broker, tmp_path, batch=10, outbox_linger_ms=1000
    )
    relay = OutboxRelay(settings, sessions)
    runs: list[int] = []  # how many rows each run that found any published
    publish = relay._publish

    async def counted(producer: Any) -> int:
        published = await publish(producer)
        if published:
            runs.append(published)
        return published

    relay._publish = counted  # type: ignore[method-assign]
    keys = [str(uuid.uuid4()) for _ in range(3)]
    relay.start()
    try:
        await asyncio.sleep(0.2)
        await add_test_rows(sessions, topic, keys, range(1), settings.outbox_lanes)
        await asyncio.sleep(0.1)  # well within the linger of the run these rows are for
        await add_test_rows(sessions, topic, keys, range(1, 2), settings.outbox_lanes)
        messages = await read_topic(broker.bootstrap, topic, expected=6)
    finally:
        await relay.stop()
    assert runs == [6]
    assert_each_once_in_order(messages, keys, 2)
    await engine.dispose()


async def test_sqlite_relay_reads_the_next_pass_while_it_sends(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """On SQLite a pass is read while the one before is sent, and marked while the next is: with
    passes of 4 x 10 rows, 1,000 rows written before the relay starts and 1,000 more committed
    while it runs each arrive once, every key's in order, and none is left pending."""
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, batch=10)
    keys = [str(uuid.uuid4()) for _ in range(20)]
    await add_test_rows(sessions, topic, keys, range(50), settings.outbox_lanes)
    relay = OutboxRelay(settings, sessions)
    relay.start()
    try:
        for first in range(50, 100, 5):  # while the relay works through the backlog
            await add_test_rows(
                sessions, topic, keys, range(first, first + 5), settings.outbox_lanes
            )
            await asyncio.sleep(0.02)
        messages = await read_topic(broker.bootstrap, topic, expected=2000)
    finally:
        await relay.stop()
    assert_each_once_in_order(messages, keys, 100)
    assert await pending_count(engine) == 0
    await engine.dispose()


async def test_sqlite_relay_starts_at_the_oldest_pending_row_and_skips_published_ones(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A pass reads on in id order from the oldest pending row of any lane: rows published
    before it, and rows published after it (as a relay reading lane by lane could leave them),
    are not sent again."""
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, batch=3)
    keys = [str(uuid.uuid4()) for _ in range(6)]
    await add_test_rows(sessions, topic, keys, range(10), settings.outbox_lanes)
    async with sessions() as session, session.begin():  # 18 published, then every third
        ids = list((await session.scalars(select(OutboxRow.id).order_by(OutboxRow.id))).all())
        published = [i for n, i in enumerate(ids) if n < 18 or n % 3 == 0]
        await session.execute(
            update(OutboxRow)
            .where(OutboxRow.id.in_(published))
            .values(published_at=datetime.now(UTC))
        )
    relay = OutboxRelay(settings, sessions)
    relay.start()
    try:
        messages = await read_topic(broker.bootstrap, topic, expected=len(ids) - len(published))
    finally:
        await relay.stop()
    sent = [orjson.loads(m.value)["id"] for m in messages]
    async with sessions() as session:
        expected = set(
            (
                await session.scalars(
                    select(OutboxRow.event_id).where(OutboxRow.id.not_in(published))
                )
            ).all()
        )
    assert sorted(sent) == sorted(expected)  # each pending row once, none published before
    assert await pending_count(engine) == 0
    await engine.dispose()


async def test_rows_written_under_other_lanes_go_out_each_aggregate_in_order(
    broker: EmbeddedBroker, backend: str, database_url: Any, tmp_path: Path
) -> None:
    """Rows written while `outbox_lanes` was 8 sit in lanes 4-7, past a relay of 4 lanes, before
    the rows written since: every row goes out once, each key's in order, and none is left
    pending. On PostgreSQL, whose passes read lane by lane, the relay moved them to their keys'
    lanes first; on SQLite a pass reads on in id order from the oldest pending row of any lane."""
    url = await database_url("marketing")
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, url, batch=2, lanes=4)
    keys = keys_past_four_lanes(6)
    await add_test_rows(sessions, topic, keys, range(3), lanes=8)
    await add_test_rows(sessions, topic, keys, range(3, 6), lanes=4)
    relay = OutboxRelay(settings, sessions)
    relay.start()
    try:
        messages = await read_topic(broker.bootstrap, topic, expected=36, timeout=15)
    finally:
        await relay.stop()
    assert_each_once_in_order(messages, keys, 6)
    assert await pending_count(engine) == 0
    async with engine.connect() as connection:
        rows = (
            await connection.execute(select(OutboxRow.key, OutboxRow.lane).order_by(OutboxRow.id))
        ).all()
    lanes = 4 if backend == "postgres" else 8
    assert all(lane == lane_of(key, lanes) for key, lane in rows[:18])  # those written under 8
    await engine.dispose()


@pytest.mark.postgres
async def test_rows_an_unrestarted_replica_writes_under_other_lanes_go_out_at_the_next_check(
    broker: EmbeddedBroker, postgres: Any, tmp_path: Path
) -> None:
    """A replica still running with `outbox_lanes` 8 writes rows into lanes 4-7 after a relay of
    4 lanes has started: no pass of that relay reads them, and its next lanes check moves them
    to their keys' lanes, so that they go out, each key's in order."""
    url = await postgres.create()
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, url, batch=2, lanes=4)
    keys = keys_past_four_lanes(6)
    relay = OutboxRelay(settings, sessions, lanes_check_every_s=0.5)
    relay.start()
    try:
        await add_test_rows(sessions, topic, keys, range(1), lanes=4)
        await read_topic(broker.bootstrap, topic, expected=6, timeout=10)  # (it has started)
        await add_test_rows(sessions, topic, keys, range(1, 4), lanes=8)
        messages = await read_topic(broker.bootstrap, topic, expected=24, timeout=15)
    finally:
        await relay.stop()
    assert_each_once_in_order(messages, keys, 4)
    assert await pending_count(engine) == 0
    await engine.dispose()


async def relay_setup(
    broker: EmbeddedBroker,
    tmp_path: Path,
    url: str | None = None,
    *,
    batch: int,
    lanes: int = 4,
    **settings_given: Any,
) -> tuple[str, Any, Any, Any]:
    """A fresh topic, and a migrated marketing database (at `url`, else a SQLite file) whose
    relay reads `batch` rows a lane over `lanes` lanes (and any other settings given): (topic,
    settings, engine, sessions)."""
    topic = f"test.relay.{uuid.uuid4().hex[:8]}"
    await ensure_topics(BatonSettings(kafka_bootstrap=broker.bootstrap), [topic])
    settings = make_settings(
        "marketing",
        database_url=url or f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        outbox_batch_size=batch,
        outbox_lanes=lanes,
        **settings_given,
    )
    engine = create_engine(settings.db_url)
    await upgrade(engine, "marketing", MARKETING.migrations)
    return topic, settings, engine, session_factory(engine)


def assert_each_once_in_order(messages: list[Any], keys: list[str], per_key: int) -> None:
    """Every row of `add_test_rows` arrived once: `per_key` of each key, in the order of `seq`."""
    payloads = [orjson.loads(m.value) for m in messages]
    assert len(payloads) == len(keys) * per_key
    assert len({p["id"] for p in payloads}) == len(payloads)
    by_key: dict[str, list[int]] = defaultdict(list)
    for p in payloads:
        by_key[p["key"]].append(p["seq"])
    assert sorted(by_key) == sorted(keys)
    assert all(seqs == list(range(per_key)) for seqs in by_key.values())


def keys_past_four_lanes(count: int) -> list[str]:
    """`count` keys whose lane under 8 lanes (4-7) is not theirs under 4."""
    keys: list[str] = []
    while len(keys) < count:
        if lane_of(key := str(uuid.uuid4()), 8) >= 4:
            keys.append(key)
    return keys


async def add_test_rows(
    sessions: Any, topic: str, keys: list[str], seqs: range, lanes: int
) -> None:
    """One transaction of pending rows: for each of `seqs`, one per key (payload: id, key, seq)."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        for seq in seqs:
            for key in keys:
                event_id = str(uuid.uuid4())
                payload = {"id": event_id, "key": key, "seq": seq}
                session.add(
                    OutboxRow(
                        event_id=event_id,
                        event_type="baton.Test.v1",
                        topic=topic,
                        key=key,
                        lane=lane_of(key, lanes),
                        payload=orjson.dumps(payload).decode(),
                        occurred_at=now,
                        created_at=now,
                    )
                )


async def test_rows_beyond_one_record_batch_keep_their_order_and_partition(
    broker: EmbeddedBroker,
) -> None:
    """With batches of 2 KiB, each partition's rows fill several: every row arrives once, on the
    partition aiokafka's default partitioner gives its key, and each key's rows keep their
    order."""
    topic = f"test.batches.{uuid.uuid4().hex[:8]}"
    settings = BatonSettings(kafka_bootstrap=broker.bootstrap, kafka_idempotence=False)
    await ensure_topics(settings, [topic])
    keys = [str(uuid.uuid4()) for _ in range(12)]
    rows = [
        SimpleNamespace(
            event_type=f"baton.Test{seq % 2}.v1",
            topic=topic,
            key=key,
            payload=orjson.dumps({"key": key, "seq": seq, "pad": "x" * 200}).decode(),
        )
        for seq in range(40)
        for key in keys
    ]
    producer = create_producer(settings, max_batch_size=2048)
    await producer.start()
    try:
        await send_rows(producer, rows)
        partitions = sorted(await producer.partitions_for(topic))
    finally:
        await producer.stop()
    messages = await read_topic(broker.bootstrap, topic, expected=len(rows))
    assert len(messages) == len(rows)
    by_key: dict[str, list[int]] = defaultdict(list)
    partitioner = DefaultPartitioner()
    for message in messages:
        payload = orjson.loads(message.value)
        by_key[payload["key"]].append(payload["seq"])
        assert message.key == payload["key"].encode()
        assert message.partition == partitioner(message.key, partitions, partitions)
        assert dict(message.headers)["ce_type"] == f"baton.Test{payload['seq'] % 2}.v1".encode()
    assert all(seqs == list(range(40)) for seqs in by_key.values())


@pytest.mark.postgres
async def test_a_postgres_relay_takes_two_passes_only_for_a_backlog(
    broker: EmbeddedBroker, postgres: Any, tmp_path: Path
) -> None:
    """What fits in a pass goes in one (every lane it can lock); once a pass fills a lane's
    batch, the next round is two passes side by side, each on up to half of the lanes."""
    url = await postgres.create()
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, url, batch=5)
    relay = OutboxRelay(settings, sessions)
    passes: list[int] = []  # the `most` lanes of each pass
    claimed = relay._publish_claimed

    async def counted(producer: Any, most: int) -> int:
        passes.append(most)
        return await claimed(producer, most)

    relay._publish_claimed = counted  # type: ignore[method-assign]
    producer = create_producer(settings)
    await producer.start()
    keys = [str(uuid.uuid4()) for _ in range(3)]
    try:
        await add_test_rows(sessions, topic, keys, range(1), settings.outbox_lanes)
        assert await relay._publish(producer) == 3
        assert passes == [4]
        await add_test_rows(sessions, topic, keys, range(1, 12), settings.outbox_lanes)
        published = await relay._publish(producer)  # one pass, a batch of each lane: full
        assert passes == [4, 4] and published >= 5
        while published:
            published = await relay._publish(producer)
        assert passes[2] == passes[3] == 2  # two passes of half of the lanes each
        assert passes[-1] == 4  # the last round found what is left fits in one pass
    finally:
        await producer.stop()
    assert_each_once_in_order(await read_topic(broker.bootstrap, topic, 36), keys, 12)
    assert await pending_count(engine) == 0
    await engine.dispose()


async def test_a_relay_claims_half_of_the_lanes_with_pending_rows(
    postgres: Any, tmp_path: Path
) -> None:
    """A pass locks only lanes that have pending rows (an idle lane would waste it), and no more
    than it is given: half of the lanes in a backlog's passes, so that another replica finds the
    rest free."""
    url = await postgres.create()
    settings = make_settings(
        "marketing", database_url=url, bootstrap="127.0.0.1:9", data_dir=tmp_path, outbox_lanes=8
    )
    engine = create_engine(url)
    await upgrade(engine, "marketing", MARKETING.migrations)
    sessions = session_factory(engine)
    relay = OutboxRelay(settings, sessions)
    now = datetime.now(UTC)

    async def add_rows(lanes: set[int]) -> None:
        async with sessions() as session, session.begin():
            for lane in lanes:
                session.add(
                    OutboxRow(
                        event_id=str(uuid.uuid4()),
                        event_type="baton.Test.v1",
                        topic="test.lanes",
                        key=str(lane),
                        lane=lane,
                        payload="{}",
                        occurred_at=now,
                        created_at=now,
                    )
                )

    async def claim() -> tuple[list[int], int]:
        async with driver_connection(engine) as connection, connection.transaction():
            lanes = await relay._claim_lanes(connection, 4)
            held = await connection.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1",
                lane_lock_class("marketing"),
            )
            return lanes, int(held or 0)

    try:
        assert await claim() == ([], 0)
        await add_rows({1, 6})
        lanes, held = await claim()
        assert sorted(lanes) == [1, 6] and held == 2
        await add_rows(set(range(8)))
        lanes, held = await claim()
        assert len(set(lanes)) == 4 and held == 4
    finally:
        await engine.dispose()


async def pending_count(engine: Any) -> int:
    async with engine.connect() as connection:
        pending = select(func.count()).where(OutboxRow.published_at.is_(None))
        return int((await connection.execute(pending)).scalar_one())


async def test_replay_republishes_the_log(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        "marketing",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    async with serve(create_marketing(settings)) as c:
        for n in range(3):
            body = {
                "email": f"r{n}-{uuid.uuid4().hex[:6]}@example.jp",
                "name": "R",
                "company": "C",
                "source": "ads",
                "occurred_at": f"2026-0{n + 1}-10T09:00:00+09:00",
            }
            assert (
                await c.post("/v1/leads", json=body, headers=auth("marketing:write"))
            ).status_code == 201
    assert await replay(settings) == 3
    assert await replay(settings, since=datetime(2026, 2, 1, tzinfo=UTC)) == 2


async def test_the_gauges_count_the_pending_rows_and_the_oldest_ones_wait(
    broker: EmbeddedBroker, database_url: Any, tmp_path: Path
) -> None:
    """The relay's gauges: how many rows are pending, and how long the oldest has waited (its
    time read back aware, as every time Baton stores, on either database)."""
    url = await database_url("marketing")
    topic, settings, engine, sessions = await relay_setup(broker, tmp_path, url, batch=10)
    await add_test_rows(sessions, topic, ["k1", "k2"], range(3), settings.outbox_lanes)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with sessions() as session, session.begin():
        oldest = select(func.min(OutboxRow.id)).scalar_subquery()
        await session.execute(
            update(OutboxRow).where(OutboxRow.id == oldest).values(created_at=an_hour_ago)
        )
    metrics = ServiceMetrics("marketing")
    try:
        await OutboxRelay(settings, sessions, metrics)._update_gauges()  # (not started)
    finally:
        await engine.dispose()
    sample = metrics.registry.get_sample_value
    assert sample("baton_outbox_backlog") == 6
    age = sample("baton_outbox_oldest_pending_age_seconds")
    assert age is not None and 3600 <= age < 3660
