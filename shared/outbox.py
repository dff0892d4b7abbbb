"""The transactional outbox (DESIGN §4): events written with the domain change, published later.

`add_event` stores an event in the caller's session, so it commits (or not) with the change that
caused it. The `OutboxRelay` publishes pending rows in order per aggregate and marks each one sent;
published rows stay as the service's event log, which `replay` can publish again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import zlib
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    Index,
    Integer,
    String,
    Table,
    Text,
    event,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.bus import create_producer
from shared.db import (
    BigIntKey,
    PlumbingBase,
    UTCDateTime,
    create_engine,
    driver_connection,
    driver_value,
    insert_many,
    on_postgres,
    session_factory,
)
from shared.events import (
    CONTENT_TYPE,
    Envelope,
    EnvelopeAttributes,
    EventData,
    envelope_json,
    new_event,
)
from shared.ids import new_ids
from shared.metrics import ServiceMetrics
from shared.partitions import partition_of
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

_DIRTY = "baton_outbox_dirty"
_NOTIFY = "baton_outbox_notify"


class OutboxRow(PlumbingBase):
    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "lane",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(100))
    lane: Mapped[int] = mapped_column(Integer)
    payload: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# Bulk inserts go to the table itself: Core skips the ORM's bookkeeping for each row.
OUTBOX_TABLE: Table = OutboxRow.__table__  # type: ignore[assignment]


class _Pending(NamedTuple):
    """What the relay reads of a pending row to publish it (and its lane, to read on after it).

    A plain tuple: reading a field of SQLAlchemy's `Row` by name costs ~10 times as much, and
    the relay reads eight of each row."""

    id: int
    lane: int
    topic: str
    key: str
    event_type: str
    payload: str


def lane_lock_class(service: str) -> int:
    """The first key of the PostgreSQL advisory locks of a service's lanes (the lane is the
    second)."""
    return zlib.crc32(f"outbox:{service}".encode()) & 0x7FFFFFFF


def lane_of(key: str, lanes: int) -> int:
    """The lane of an aggregate: stable across processes (unlike `hash`)."""
    return zlib.crc32(key.encode()) % lanes


def _row(
    event_id: str,
    event_type: str,
    key: str,
    payload: bytes,
    occurred_at: datetime,
    *,
    topic: str,
    lanes: int,
    created_at: datetime,
) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "topic": topic,
        "key": key,
        "lane": lane_of(key, lanes),
        "payload": payload.decode(),
        "occurred_at": occurred_at,
        "created_at": created_at,
    }


def add_event(session: AsyncSession, envelope: Envelope, *, topic: str, lanes: int) -> None:
    """Store `envelope` for publication when (and only if) the session's transaction commits."""
    row = _row(
        envelope.event_id,
        envelope.type,
        envelope.partitionkey,
        envelope.to_json(),
        envelope.time,
        topic=topic,
        lanes=lanes,
        created_at=datetime.now(UTC),
    )
    session.add(OutboxRow(**row))
    session.info[_DIRTY] = True


class Outbox:
    """Where a service's events go: its topic, spread over the relay's lanes.

    `caused_by(envelope)` gives an outbox whose events carry that envelope's journey
    (`correlationid`) and name it as their cause (`causationid`), as event handlers need.
    """

    def __init__(
        self,
        topic: str,
        lanes: int,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        self.topic = topic
        self.lanes = lanes
        self._correlation_id = correlation_id
        self._causation_id = causation_id

    def caused_by(self, envelope: EnvelopeAttributes) -> Outbox:
        return Outbox(
            self.topic,
            self.lanes,
            correlation_id=envelope.correlationid,
            causation_id=envelope.event_id,
        )

    def emit(
        self,
        session: AsyncSession,
        data: EventData,
        *,
        time: datetime | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        """Wrap `data` in an envelope and add it to the session's transaction."""
        envelope = new_event(
            data,
            time=time,
            correlation_id=correlation_id or self._correlation_id,
            causation_id=causation_id or self._causation_id,
        )
        add_event(session, envelope, topic=self.topic, lanes=self.lanes)
        return envelope

    async def emit_many(
        self,
        session: AsyncSession,
        data_type: type[EventData],
        events: Sequence[tuple[Mapping[str, Any], datetime]],
    ) -> None:
        """Emit each `(data, event time)` of a bulk change, in one statement (see `rows`)."""
        await self.add_rows(session, self.rows(data_type, events))

    def rows(
        self, data_type: type[EventData], events: Sequence[tuple[Mapping[str, Any], datetime]]
    ) -> list[dict[str, Any]]:
        """The outbox rows of a bulk change's events of `data_type`, for `add_rows`: each
        `(data, event time)`, its data already valid as `data_type` (`envelope_json`). No I/O: a
        worker thread may make them while the event loop writes others."""
        created_at = datetime.now(UTC)
        event_type, aggregate = data_type.event_type(), data_type.aggregate_field
        rows = []
        for (data, time), event_id in zip(events, new_ids(len(events)), strict=True):
            payload = envelope_json(
                data_type,
                data,
                event_id=event_id,
                time=time,
                correlation_id=self._correlation_id,
                causation_id=self._causation_id,
            )
            rows.append(
                _row(
                    event_id,
                    event_type,
                    str(data[aggregate]),
                    payload,
                    time,
                    topic=self.topic,
                    lanes=self.lanes,
                    created_at=created_at,
                )
            )
        return rows

    async def add_rows(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Add outbox rows made by `rows` to the session's transaction, in one statement."""
        if rows:
            await insert_many(session, OUTBOX_TABLE, rows)
            session.info[_DIRTY] = True


def wake_relay(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Tell the relay publishing the database of `sessions`, if one runs in this process, that
    rows were committed outside a session of theirs (through the driver's own connection)."""
    notify = sessions.kw.get("info", {}).get(_NOTIFY)
    if notify is not None:
        notify()


@event.listens_for(Session, "after_commit")
def _wake_relay(session: Session) -> None:
    if session.info.pop(_DIRTY, False):
        notify = session.info.get(_NOTIFY)
        if notify is not None:
            notify()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_DIRTY, None)


async def send_rows(
    producer: AIOKafkaProducer, rows: Sequence[Any], timeout_s: float = 30.0
) -> None:
    """Send rows (in the given order) and wait until the broker has acknowledged all of them."""
    async with asyncio.timeout(timeout_s):
        await _send_all(producer, rows)


async def _send_all(producer: AIOKafkaProducer, rows: Sequence[Any]) -> None:
    """Each partition's rows as record batches of their own (aiokafka's batch API), in id order.

    A row goes to the partition aiokafka's default partitioner would give its key, from the
    topic's partitions listed once per call. A batch costs a third of the CPU of the same records
    sent one by one (`producer.send` makes a future and goes through the accumulator for each).
    """
    headers: dict[str, list[tuple[str, bytes]]] = {}  # per event type, shared by its rows
    partitions: dict[str, list[int]] = {}
    batches: dict[tuple[str, int], Any] = {}  # (topic, partition) -> its open BatchBuilder
    sent = []
    for row in rows:
        if (row_headers := headers.get(row.event_type)) is None:
            row_headers = headers[row.event_type] = [
                ("content-type", CONTENT_TYPE.encode()),
                ("ce_type", row.event_type.encode()),
            ]
        if (topic_partitions := partitions.get(row.topic)) is None:
            found = await producer.partitions_for(row.topic)
            topic_partitions = partitions[row.topic] = sorted(found)
        key = row.key.encode()
        where = (row.topic, partition_of(key, topic_partitions))
        if (batch := batches.get(where)) is None:
            batch = batches[where] = producer.create_batch()
        value = row.payload.encode()
        if batch.append(key=key, value=value, timestamp=None, headers=row_headers) is None:
            # Full: send it and start the next one (a batch always takes its first record).
            sent.append(await producer.send_batch(batch, where[0], partition=where[1]))
            batch = batches[where] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=row_headers)
    for (topic, partition), batch in batches.items():
        batch.close()
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)


# The relay's statements go through the driver's own connection (`shared.db.driver_connection`):
# SQLAlchemy's work for each cost the event loop more than the database's, and a relay pass runs
# several. Written once, by hand, in each database's own dialect.
_COLUMNS = ", ".join(_Pending._fields)

# PostgreSQL: of the lanes given ($1), those with pending rows, in random order, whose advisory
# lock ($2, the lane) this transaction gets, at most $3 of them. MATERIALIZED: the lock must
# not be pushed down to every candidate lane.
_CLAIM_LANES = (
    "WITH candidates AS MATERIALIZED (SELECT l.lane FROM unnest($1::int[]) AS l(lane) "
    "WHERE EXISTS (SELECT 1 FROM outbox "
    "WHERE outbox.lane = l.lane AND outbox.published_at IS NULL) "
    "ORDER BY random()) "
    "SELECT lane FROM candidates WHERE pg_try_advisory_xact_lock($2, lane) LIMIT $3"
)
# PostgreSQL: the lanes a pass claimed ($1), each its batch ($2) of pending rows (a lateral
# index scan each). A statement of its own, after the claim: its snapshot then holds what the
# lanes' last holder committed before letting go of them.
_PENDING_IN_LANES = (
    f"SELECT {', '.join(f'o.{name}' for name in _Pending._fields)} "
    "FROM unnest($1::int[]) AS l(lane) CROSS JOIN LATERAL ("
    f"SELECT {_COLUMNS} FROM outbox "
    "WHERE outbox.lane = l.lane AND outbox.published_at IS NULL "
    "ORDER BY outbox.id LIMIT $2) AS o"
)
# Marking a pass's rows published, their ids one parameter: an array, or on SQLite a JSON array
# (`json_each`). A lone statement on SQLite is a transaction of its own.
_MARK_ON_POSTGRES = "UPDATE outbox SET published_at = $2 WHERE id = ANY($1::bigint[])"
_MARK_ON_SQLITE = "UPDATE outbox SET published_at = ? WHERE id IN (SELECT value FROM json_each(?))"


# SQLite, which has one writer: ids are committed in order, so the pending rows after a pass are
# those after its last id. The oldest pending row of a lane (a seek in `ix_outbox_pending`), and
# a pass: the pending rows after an id, in id order (a range of the table's own order, its rows
# side by side, rather than a seek for each row from the lanes' index).
_OLDEST_PENDING_IN_LANE = "SELECT min(id) FROM outbox WHERE published_at IS NULL AND lane = ?"
_LAST_PENDING_LANE = "SELECT max(lane) FROM outbox WHERE published_at IS NULL"
_PENDING_AFTER = (
    f"SELECT {_COLUMNS} FROM outbox WHERE id > ? AND published_at IS NULL ORDER BY id LIMIT ?"
)


def _read_on_sqlite(
    connection: sqlite3.Connection, after: int | None, lanes: int, most: int
) -> list[_Pending]:
    """Up to `most` pending rows after the id `after` (None: from the oldest pending row of
    any lane: of the `lanes` lanes, and of any lane past them that rows written while
    `outbox_lanes` was higher are in), in id order."""
    if after is None:
        last = connection.execute(_LAST_PENDING_LANE).fetchone()[0]
        oldest = [
            connection.execute(_OLDEST_PENDING_IN_LANE, (lane,)).fetchone()[0]
            for lane in range(max(lanes, (last or 0) + 1))
        ]
        first = min((found for found in oldest if found is not None), default=None)
        if first is None:
            return []
        after = first - 1
    return list(map(_Pending._make, connection.execute(_PENDING_AFTER, (after, most))))


def _mark_on_sqlite(connection: sqlite3.Connection, published_at: str, ids: str) -> None:
    connection.execute(_MARK_ON_SQLITE, (published_at, ids))


class OutboxRelay:
    """Publishes pending outbox rows; woken after each commit that added some, or by a poll."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        metrics: ServiceMetrics | None = None,
        *,
        max_backoff_s: float = 10.0,
        lanes_check_every_s: float = 60.0,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self._metrics = metrics
        self._wake = asyncio.Event()
        self._stopping = False
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._max_backoff_s = max_backoff_s
        self._lanes_check_every_s = lanes_check_every_s
        self._send_timeout_s = 3 * settings.kafka_request_timeout_ms / 1000
        self._postgres = on_postgres(sessions)
        # The last run left more pending than it took: on PostgreSQL a pass filled a lane's
        # batch; on SQLite the run's time was up.
        self._backlog = False
        self._lane_lock_class = lane_lock_class(settings.service)
        self.connected = False
        sessions.configure(info={**sessions.kw.get("info", {}), _NOTIFY: self.wake})

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._settings.service}")

    async def stop(self, flush_timeout_s: float = 10.0) -> None:
        """Publish what is pending (within the timeout), then stop the producer."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, flush_timeout_s)
            except TimeoutError:
                log.warning("outbox relay stopped before its backlog was flushed")
        await self._discard_producer()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = create_producer(self._settings)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
            self.connected = True
        return self._producer

    async def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 5)

    async def _run(self) -> None:
        backoff = 0.1
        last_gauge = 0.0
        loop = asyncio.get_running_loop()
        linger = self._settings.outbox_linger_ms / 1000
        next_lanes_check = loop.time()  # (PostgreSQL: before the first pass, then each minute)
        while True:
            if linger and not (self._backlog or self._stopping):
                # The commits of the next few ms go out with this run's: under load, fewer and
                # larger runs (each one's reads, sends and marks cost the event loop more than
                # its rows do). A backlog goes out without a pause.
                await asyncio.sleep(linger)
            self._wake.clear()
            try:
                if self._postgres and loop.time() >= next_lanes_check:
                    await self._move_to_own_lanes()
                    next_lanes_check = loop.time() + self._lanes_check_every_s
                producer = await self._ensure_producer()
                published = await self._publish(producer)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected = False
                await self._discard_producer()  # a fresh client after an outage, not a stale one
                if self._stopping:
                    return
                log.warning(
                    "outbox publish failed; retrying",
                    extra={"error": repr(exc), "retry_in_s": backoff},
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            if self._metrics is not None and loop.time() - last_gauge > 1.0:
                last_gauge = loop.time()
                await self._update_gauges()
            if published:
                continue  # there may be more: go on until a pass finds nothing
            if self._stopping:
                return
            await self._sleep(self._settings.outbox_poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _move_to_own_lanes(self) -> int:
        """PostgreSQL: move every pending row to its key's lane under `outbox_lanes`, before the
        relay's first pass and then every `lanes_check_every_s`; how many moved.

        A row written while `outbox_lanes` was set otherwise (before a restart, or by a replica
        not yet restarted with the new setting) may sit in another lane than its key's, or in one
        past the last lane. There no pass would read it, or an aggregate's rows would be split
        over two lanes, whose passes would send them out of order. The pending rows are read with
        the driver, in chunks, until one is found out of its lane (the usual check finds none).
        Then, in one transaction, the relay waits for the advisory lock of every lane with
        pending rows and of `outbox_lanes` (so that no other replica's pass is halfway through a
        row being moved) and moves them. While replicas run under different settings, each
        writes and moves rows to its own lanes, and an aggregate's rows may go out of order until
        they agree: change the setting on every replica together. (On SQLite a pass reads on in
        id order whatever the lanes, and starts from the oldest pending row of any lane:
        `_read_on_sqlite`.)
        """
        lanes, lock, moved = self._settings.outbox_lanes, self._lane_lock_class, 0
        async with driver_connection(self._engine) as connection:
            async with (
                connection.transaction(readonly=True),
                contextlib.aclosing(_out_of_lane(connection, lanes)) as found,
            ):
                if await anext(found, None) is None:
                    return 0
            async with connection.transaction():
                pending = [row[0] for row in await connection.fetch(_PENDING_LANES)]
                # In lane order: two relays moving at once wait for each other, never deadlock
                # (and passes only try their locks).
                for lane in sorted(set(range(lanes)).union(pending)):
                    await connection.execute(_LOCK_LANE, lock, lane)
                async for ids, to_lanes in _out_of_lane(connection, lanes):
                    await connection.execute(_MOVE_TO_LANES, ids, to_lanes)
                    moved += len(ids)
        if moved:
            log.warning(
                "outbox rows moved to their lanes under outbox_lanes",
                extra={"rows": moved, "lanes": lanes},
            )
        return moved

    async def _publish(self, producer: AIOKafkaProducer) -> int:
        """Publish pending rows; return how many were published (none: nothing was pending)."""
        if not self._postgres:
            return await self._publish_in_turn(producer)
        lanes = self._settings.outbox_lanes
        if not self._backlog:
            # What is pending fits in a pass (the round before filled no lane's batch): one
            # pass over every lane it can lock, its transaction's trips made once.
            return await self._publish_claimed(producer, lanes)
        # A backlog: two passes side by side, each on the lanes it could lock (up to half of
        # them), so that one's database work overlaps the other's wait for the broker.
        self._backlog = False
        half = max(1, -(-lanes // 2))
        async with asyncio.TaskGroup() as passes:  # a failure cancels the other pass
            both = [passes.create_task(self._publish_claimed(producer, half)) for _ in range(2)]
        return sum(task.result() for task in both)

    async def _publish_claimed(self, producer: AIOKafkaProducer, most: int) -> int:
        """PostgreSQL: one pass over the lanes it can lock (at most `most`), up to a batch of rows
        per lane. The lane locks last until the rows are marked: replicas never overlap."""
        async with driver_connection(self._engine) as connection, connection.transaction():
            lanes = await self._claim_lanes(connection, most)
            rows = await self._pending(connection, lanes)
            if rows:
                await send_rows(producer, rows, self._send_timeout_s)
                ids = [row.id for row in rows]
                await connection.execute(_MARK_ON_POSTGRES, ids, datetime.now(UTC))
        self._count(rows)
        batch = self._settings.outbox_batch_size
        if len(rows) >= batch and max(Counter(row.lane for row in rows).values()) >= batch:
            self._backlog = True  # a lane filled its batch (more may wait): two passes next
        return len(rows)

    async def _publish_in_turn(self, producer: AIOKafkaProducer) -> int:
        """SQLite: passes of the oldest pending rows (as many as a batch per lane), one after
        the other until nothing is pending (or for about a second, so that the gauges keep up),
        the database's work overlapping the broker's: while a pass is sent, the next one is read
        (the rows after this pass's last id) and the one before is marked published.

        A pass is sent only once the one before it is acknowledged, and marked only once it is
        acknowledged itself. A failure stops the passes in flight: every row not yet marked stays
        pending, to be sent again in order. SQLite has one writer, so a row committed later has
        a higher id than any already visible: reading on after a pass's last id misses none, and
        the rows go out in id order, each aggregate's in its own order. The reads take no write
        lock, and the sends hold none: requests keep committing while a send waits on a slow or
        absent broker.
        """
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.0
        rows = await self._read_pending(None)
        sent: list[_Pending] = []
        published = 0
        self._backlog = False
        while rows:
            if loop.time() < until:
                reading = self._read_pending(rows[-1].id)
            else:  # time is up: this pass is the last, and more may be pending
                reading, self._backlog = _no_rows(), True
            # Each step runs to its end (a send's has a timeout): a mark is not cut off halfway.
            sending, marking, upcoming = await asyncio.gather(
                send_rows(producer, rows, self._send_timeout_s),
                self._mark_in_transaction(sent),
                reading,
                return_exceptions=True,
            )
            for outcome in (sending, marking, upcoming):
                if isinstance(outcome, BaseException):
                    raise outcome
            assert isinstance(upcoming, list)  # (for the type checker: raised above otherwise)
            published += len(sent)
            sent, rows = rows, upcoming
        await self._mark_in_transaction(sent)
        return published + len(sent)

    async def _read_pending(self, after: int | None) -> list[_Pending]:
        """SQLite: a pass, the pending rows after the id `after` (None: from the oldest), in id
        order, read in one trip."""
        lanes = self._settings.outbox_lanes
        most = self._settings.outbox_batch_size * lanes
        async with driver_connection(self._engine) as connection:
            return await connection.run(_read_on_sqlite, after, lanes, most)

    async def _mark_in_transaction(self, rows: Sequence[_Pending]) -> None:
        """SQLite: `rows` marked published, in one trip."""
        if not rows:
            return
        ids = orjson.dumps([row.id for row in rows]).decode()
        published_at = driver_value(self._engine.dialect, _PUBLISHED_AT, datetime.now(UTC))
        async with driver_connection(self._engine) as connection:
            await connection.run(_mark_on_sqlite, published_at, ids)
        self._count(rows)

    def _count(self, rows: Sequence[_Pending]) -> None:
        if rows and self._metrics is not None:
            self._metrics.outbox_published.inc(len(rows))

    async def _pending(self, connection: Any, lanes: list[int]) -> list[_Pending]:
        """PostgreSQL: up to a batch of each of `lanes`' oldest pending rows (a per-lane prefix),
        in id order.

        One index range scan per lane (`ix_outbox_pending`), with no sort of the backlog.
        """
        if not lanes:
            return []
        batch = self._settings.outbox_batch_size
        return _in_id_order(await connection.fetch(_PENDING_IN_LANES, lanes, batch))

    async def _claim_lanes(self, connection: Any, most: int) -> list[int]:
        """The lanes (at most `most`) whose PostgreSQL advisory lock this relay gets for the
        transaction open on `connection` (asyncpg's).

        No two relays publish rows of the same aggregate at once, and each publishes its lanes'
        rows in id order: per-aggregate order holds with any number of replicas. Lanes with
        pending rows only (an idle lane would waste the pass), in random order, so that
        replicas share the work of a backlog (passed half of them at a time).
        """
        lanes = list(range(self._settings.outbox_lanes))
        claimed = await connection.fetch(_CLAIM_LANES, lanes, self._lane_lock_class, most)
        return [row[0] for row in claimed]

    async def _update_gauges(self) -> None:
        assert self._metrics is not None
        async with self._sessions() as session:
            count, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(
                        OutboxRow.published_at.is_(None)
                    )
                )
            ).one()
        self._metrics.outbox_backlog.set(count)
        # (`min` keeps the column's type: the time comes back aware, on either database)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self._metrics.outbox_oldest_age.set(age)


_PUBLISHED_AT = OUTBOX_TABLE.c.published_at

# PostgreSQL: moving pending rows to their lanes (`OutboxRelay._move_to_own_lanes`, at start and
# every minute after): every pending row's key and lane, the lanes with pending rows, a lane's lock
# (held to the transaction's end), and the rows' moves.
_PENDING_KEYS = "SELECT id, key, lane FROM outbox WHERE published_at IS NULL"
_PENDING_LANES = "SELECT DISTINCT lane FROM outbox WHERE published_at IS NULL"
_LOCK_LANE = "SELECT pg_advisory_xact_lock($1, $2)"
_MOVE_TO_LANES = (
    "UPDATE outbox SET lane = m.lane FROM unnest($1::bigint[], $2::int[]) AS m(id, lane) "
    "WHERE outbox.id = m.id"
)


async def _out_of_lane(
    connection: Any, lanes: int
) -> AsyncGenerator[tuple[list[int], list[int]], None]:
    """PostgreSQL: the pending rows not in their key's lane under `lanes`, a chunk at a time
    (their ids, and their lanes), read with a cursor in the transaction open on `connection`
    (asyncpg's)."""
    cursor = await connection.cursor(_PENDING_KEYS)
    while chunk := await cursor.fetch(10_000):
        moves = [
            (row_id, own) for row_id, key, lane in chunk if (own := lane_of(key, lanes)) != lane
        ]
        if moves:
            ids, to_lanes = zip(*moves, strict=True)
            yield list(ids), list(to_lanes)


async def _no_rows() -> list[_Pending]:
    return []


def _in_id_order(rows: Iterable[Any]) -> list[_Pending]:
    """Pending rows as plain tuples, sorted by id (their first field; ids are unique)."""
    pending = list(map(_Pending._make, rows))
    pending.sort()
    return pending


async def replay(settings: ServiceSettings, since: datetime | None = None) -> int:
    """Publish the service's outbox rows again, in order (consumers dedupe by event id)."""
    engine: AsyncEngine = create_engine(settings.db_url)
    producer = create_producer(settings)
    await producer.start()
    sent = 0
    try:
        sessions = session_factory(engine)
        last_id = 0
        while True:
            async with sessions() as session:
                query = select(OutboxRow).where(OutboxRow.id > last_id)
                if since is not None:
                    query = query.where(OutboxRow.occurred_at >= since)
                rows = (await session.scalars(query.order_by(OutboxRow.id).limit(1000))).all()
            if not rows:
                return sent
            await send_rows(producer, rows)
            sent += len(rows)
            last_id = rows[-1].id
    finally:
        await producer.stop()
        await engine.dispose()
