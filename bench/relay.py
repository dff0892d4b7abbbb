"""Outbox relay throughput: rows published per second by the real `OutboxRelay` of the marketing
service (default settings: up to 500 rows per lane and pass, 8 lanes; metrics on, as `baton
serve` runs it), against a raw aiokafka batched produce of the same bytes (same keys, headers,
partitions and producer options: each partition's rows in record batches of their own,
`create_batch` and `send_batch`, as the relay sends them) to a topic with as many partitions, on
the same embedded broker, in the same run. Each round writes N pending LeadCaptured rows with the
real Outbox writer (`emit_many`, 10,000 rows a transaction), then times the relay from its start
until no row is pending, and the raw produce from the producer's start until every batch is
acknowledged. Also shown: raw with one `send` per row, every one queued before awaiting the acks
(the baseline before the relay sent batches).
Rows/s, median over rounds (the order of the two sides alternates). Target: relay >= 50% of raw.

The floor, in the same rounds, is the database's part of any relay alone, on a copy of the same
pending rows (same columns and indexes): every row read and marked published, in passes as large
as a relay pass at these settings (batch size x lanes, a transaction each), with the raw driver
(a pass's rows marked in one UPDATE, their ids one parameter, as the relay marks them; on SQLite
the next pass read while this one is marked, as the relay there does), and nothing sent. A relay
must do at least this besides sending, so its rate cannot exceed the floor's; a target above the
floor's ratio is out of reach of a relay marking rows in passes of that size on this machine.

Each side's CPU is measured too: the event loop's thread's, and the whole machine's (every
process: this one, the broker, PostgreSQL; from /proc/stat, where there is one). A relay does at
least the floor's work and the raw produce's, so the machine's CPU a row of the two together,
spread over every core at once, bounds it: a target above that bound is out of reach on this
machine whatever the relay overlaps.

    .venv/bin/python -m bench.relay [--db sqlite|postgres|both] [--events 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson
import uvloop
from sqlalchemy import select

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
from services.marketing.app import SPEC as MARKETING
from services.marketing.settings import Settings
from shared.app import tune_interpreter
from shared.bus import create_producer, ensure_topics
from shared.db import create_engine, session_factory
from shared.events import CONTENT_TYPE, LeadCaptured, LeadSource
from shared.metrics import ServiceMetrics
from shared.migrations import upgrade
from shared.outbox import Outbox, OutboxRelay, OutboxRow
from shared.partitions import partition_of

TARGET = 0.50
CHUNK = 10_000  # rows per insert transaction
POLL_S = 0.01
SOURCES: tuple[LeadSource, ...] = LeadSource.__args__  # type: ignore[attr-defined]
TITLES = ("CTO", "Head of Sales", "Engineer", None)
CAMPAIGNS = [uuid.uuid4() for _ in range(20)]


def leads(count: int, seed: int) -> list[tuple[LeadCaptured, datetime]]:
    """`count` LeadCaptured events as the marketing service writes them, over the last 90 days."""
    rng, now = random.Random(seed), datetime.now(UTC)
    out = []
    for n in range(count):
        campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.6 else None
        data = LeadCaptured(
            lead_id=uuid.uuid4(),
            email=f"lead-{seed}-{n}@example.jp",
            name=f"Lead {n}",
            company=f"Company {rng.randrange(2000)} KK",
            title=rng.choice(TITLES),
            source=rng.choice(SOURCES),
            campaign_id=campaign,
        )
        out.append((data, now - timedelta(seconds=rng.randrange(90 * 86_400))))
    return out


async def write_pending(
    settings: Settings, topic: str, count: int, seed: int
) -> list[tuple[bytes, bytes, bytes]]:
    """Write `count` pending rows for `topic`; their (key, value, type)."""
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine, "marketing", MARKETING.migrations)
        sessions, outbox = session_factory(engine), Outbox(topic, settings.outbox_lanes)
        async with sessions() as session, session.begin():
            events = leads(count, seed)
        for start in range(0, count, CHUNK):
            async with sessions() as session, session.begin():
                chunk = events[start : start + CHUNK]
                await outbox.emit_many(
                    session, LeadCaptured, [(e.model_dump(), t) for e, t in chunk]
                )
        async with sessions() as session:
            rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
            return [(r.key.encode(), r.payload.encode(), r.event_type.encode()) for r in rows]
    finally:
        await engine.dispose()


async def time_relay(settings: Settings) -> Took:
    """The relay's time, from its start, until no row is pending."""
    engine = create_engine(settings.db_url)
    try:
        sessions = session_factory(engine)
        pending = select(OutboxRow.id).where(OutboxRow.published_at.is_(None)).limit(1)
        relay = OutboxRelay(settings, sessions, ServiceMetrics("marketing"))
        stopwatch = Stopwatch()
        relay.start()
        try:
            while True:
                async with sessions() as session:
                    if (await session.scalar(pending)) is None:
                        return stopwatch.took()
                await asyncio.sleep(POLL_S)
        finally:
            await relay.stop()
    finally:
        await engine.dispose()


async def time_floor(url: str, pass_rows: int) -> Took:
    """The floor's time to read every pending row of `outbox_floor` and mark it published,
    in passes of `pass_rows` (a transaction each), with the raw driver; nothing is sent.

    On SQLite, as the relay there, the next pass is read (the rows after this pass's last id, on
    a second connection, which WAL lets read beside the writer) while this one is marked, each
    on a thread of its own."""
    select_sql = (  # the oldest pending rows, as a relay pass reads them (lanes aside)
        "SELECT id, topic, key, payload, event_type FROM outbox_floor "
        "WHERE published_at IS NULL AND id > {} ORDER BY id LIMIT {}"
    )
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            stopwatch, after = Stopwatch(), 0
            while True:
                async with connection.transaction():
                    rows = await connection.fetch(select_sql.format("$1", "$2"), after, pass_rows)
                    if not rows:
                        return stopwatch.took()
                    after = rows[-1][0]
                    await connection.execute(
                        "UPDATE outbox_floor SET published_at = now() WHERE id = ANY($1)",
                        [row[0] for row in rows],
                    )
        finally:
            await connection.close()
    path = sqlite_path(url)
    with (
        contextlib.closing(sqlite_writer(path, any_thread=True)) as writer,
        contextlib.closing(sqlite_writer(path, any_thread=True)) as reader,
    ):

        def read(after: int) -> list[Any]:
            return reader.execute(select_sql.format("?", "?"), (after, pass_rows)).fetchall()

        def mark(rows: list[Any]) -> None:
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
            ids = orjson.dumps([row[0] for row in rows]).decode()
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(
                "UPDATE outbox_floor SET published_at = ? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (now, ids),
            )
            writer.execute("COMMIT")

        stopwatch = Stopwatch()
        rows = await asyncio.to_thread(read, 0)
        while rows:
            _, rows = await asyncio.gather(
                asyncio.to_thread(mark, rows), asyncio.to_thread(read, rows[-1][0])
            )
        return stopwatch.took()


async def time_raw(
    settings: Settings, topic: str, rows: list[tuple[bytes, bytes, bytes]], batches: bool
) -> Took:
    """The time a plain producer takes, from its start, to have every row acknowledged: with
    `batches`, each partition's rows in record batches of their own (`create_batch`,
    `send_batch`); otherwise one `send` per row, every one queued before awaiting the acks."""
    content_type = ("content-type", CONTENT_TYPE.encode())
    stopwatch = Stopwatch()
    producer = create_producer(settings)
    await producer.start()
    try:
        if not batches:
            pending = [
                await producer.send(
                    topic, value=value, key=key, headers=[content_type, ("ce_type", event_type)]
                )
                for key, value, event_type in rows
            ]
            await asyncio.gather(*pending)
            return stopwatch.took()
        partitions = sorted(await producer.partitions_for(topic))
        open_batches: dict[int, Any] = {}
        sent = []
        for key, value, event_type in rows:
            partition = partition_of(key, partitions)
            batch = open_batches.get(partition) or open_batches.setdefault(
                partition, producer.create_batch()
            )
            headers = [content_type, ("ce_type", event_type)]
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                sent.append(await producer.send_batch(batch, topic, partition=partition))
                batch = open_batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=headers)
        for partition, batch in open_batches.items():
            batch.close()
            sent.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*sent)
        return stopwatch.took()
    finally:
        await producer.stop()


async def one_round(url: str, bootstrap: str, tmp: Path, events: int, seed: int) -> dict[str, Took]:
    """The time of the relay, of the raw batched produce, of raw sends one by one and of the
    floor, on a fresh database and fresh topics."""
    settings = Settings(
        database_url=url,
        kafka_bootstrap=bootstrap,
        kafka_idempotence=False,
        data_dir=tmp,
        jwt_secret=SECRET,
    )
    relay_topic, raw_topic, sends_topic = (f"bench.relay.{uuid.uuid4().hex[:8]}" for _ in range(3))
    await ensure_topics(settings, [relay_topic, raw_topic, sends_topic])
    rows = await write_pending(settings, relay_topic, events, seed)
    await copy_tables(url, [("outbox", "outbox_floor")], with_rows=True)  # for the floor
    took = {}
    if seed % 2:  # alternate which side goes first
        took["raw"] = await time_raw(settings, raw_topic, rows, batches=True)
        took["relay"] = await time_relay(settings)
    else:
        took["relay"] = await time_relay(settings)
        took["raw"] = await time_raw(settings, raw_topic, rows, batches=True)
    took["sends"] = await time_raw(settings, sends_topic, rows, batches=False)
    took["floor"] = await time_floor(url, settings.outbox_batch_size * settings.outbox_lanes)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    dbs = chosen_databases(args)
    tune_interpreter()  # the relay's process: as a service's, once started (both sides)
    medians: dict[str, dict[str, float]] = {}  # rows/s
    loop_cpu: dict[str, dict[str, float]] = {}  # µs of the event loop's CPU a row
    busy: dict[str, float] = {}  # the relay's event loop: CPU time of wall time
    machine_cpu: dict[str, dict[str, float]] = {}  # µs of the machine's CPU a row
    with (
        tempfile.TemporaryDirectory(prefix="baton-bench-") as name,
        EmbeddedBroker(log_file=Path(name) / "broker.log") as broker,
    ):
        for db in dbs:
            rounds = []
            for n in range(args.rounds):
                with database(db, Path(name), "marketing") as url:
                    took = uvloop.run(one_round(url, broker.bootstrap, Path(name), args.events, n))
                rounds.append(took)
                figures = ", ".join(
                    f"{side} {args.events / t.wall:,.0f}/s ({t.loop_cpu / t.wall:.0%} loop CPU)"
                    for side, t in took.items()
                )
                print(f"{db} round {n + 1}: {figures}", file=sys.stderr)
            medians[db] = {
                side: statistics.median(args.events / r[side].wall for r in rounds)
                for side in rounds[0]
            }
            loop_cpu[db] = {
                side: statistics.median(r[side].loop_cpu / args.events * 1e6 for r in rounds)
                for side in rounds[0]
            }
            busy[db] = statistics.median(r["relay"].loop_cpu / r["relay"].wall for r in rounds)
            if all(t.machine_cpu is not None for r in rounds for t in r.values()):
                machine_cpu[db] = {
                    side: statistics.median(
                        cast(float, r[side].machine_cpu) / args.events * 1e6 for r in rounds
                    )
                    for side in rounds[0]
                }
    print_ratios(
        f"outbox relay, {args.events:,} LeadCaptured rows, median of {args.rounds} rounds",
        ("relay rows/s", "raw rows/s"),
        {db: (m["relay"], m["raw"]) for db, m in medians.items()},
        TARGET,
    )
    for db, m in medians.items():
        print(
            f"{db:<10}floor (the database's part alone): {m['floor']:,.0f} rows/s, "
            f"{m['floor'] / m['raw']:.1%} of raw; raw with one send per row: "
            f"{m['sends']:,.0f} rows/s (relay {m['relay'] / m['sends']:.1%} of it)"
        )
        cpu = loop_cpu[db]
        print(
            f"{db:<10}event loop's CPU a row: relay {cpu['relay']:.2f} µs (busy "
            f"{busy[db]:.0%} of its time), raw {cpu['raw']:.2f}, floor {cpu['floor']:.2f}"
        )
        if (machine := machine_cpu.get(db)) is not None:
            # A relay does the floor's work and raw's: on every core at once, at the most.
            cores = os.cpu_count() or 1
            bound = cores * 1e6 / (machine["floor"] + machine["raw"])
            print(
                f"{db:<10}machine's CPU a row (every process): relay {machine['relay']:.1f} µs, "
                f"raw {machine['raw']:.1f}, floor {machine['floor']:.1f}; the floor's and raw's "
                f"on {cores} cores: at most {bound:,.0f} rows/s, {bound / m['raw']:.1%} of raw "
                f"(relay {m['relay'] / bound:.0%} of it)"
            )


if __name__ == "__main__":
    main()
