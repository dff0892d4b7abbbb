"""The inbox (DESIGN §4): consume, apply each event once, commit offsets after the database.

Each event's id is recorded in the same transaction as the handler's effect, so a redelivered
event is a no-op. A fetch's events are applied in one transaction (each partition's in one of
its own if any of them fails, and then one by one). The Kafka offset is committed only after
that transaction commits. An event that cannot be read, or whose handler keeps failing, goes to
`baton.dlq` with the error, and the consumer carries on with the next one. An event no handler
wants (of a type the service does not handle, or one its `Selective` handler leaves) is counted
as ignored and recorded nowhere: it has no effect to repeat. A service may do some of its work
once per transaction rather than once per event (`TransactionWork`: load what the events touch,
write what they accumulated).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, Self, cast

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import String, Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared import logs
from shared.bus import CommitOnRevoke, create_consumer, create_producer
from shared.db import (
    PlumbingBase,
    UTCDateTime,
    insert_if_absent,
    insert_many,
    read_only,
    writes_together,
)
from shared.events import (
    EnvelopeAttributes,
    EventData,
    EventParseError,
    decode,
    event_ids,
    parse_envelope,
    parse_event,
)
from shared.metrics import ServiceMetrics
from shared.outbox import Outbox
from shared.settings import DLQ_TOPIC, ServiceSettings

log = logging.getLogger(__name__)


class InboxRow(PlumbingBase):
    __tablename__ = "inbox"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime] = mapped_column(UTCDateTime)


_INBOX = cast(Table, InboxRow.__table__)
_INBOX_COLUMNS = ("event_id", "event_type", "source", "occurred_at", "handled_at")


class TransactionWork(Protocol):
    """A service's work done once per inbox transaction instead of once per event: `prepare`
    before the transaction's new events are handled (e.g. load the rows they touch), `finish`
    after them, before the commit (e.g. write what they accumulated)."""

    async def prepare(self, events: Sequence[tuple[EnvelopeAttributes, EventData]]) -> None: ...

    async def finish(self) -> None: ...


class OneWriterWork(TransactionWork, Protocol):
    """The transaction work of a service with one writer (one replica, and handlers that change
    nothing but through the work): its consumer handles a fetch's events while the fetch before
    writes (`InboxConsumer`, `one_writer`). The work is then built on a session that only reads
    (`prepare` reads there; `finish` is not called): `carry` first takes what the work before
    changed, as that may not have committed yet; the handlers run; `settle` works out what to
    write, as values the next fetch's handlers cannot change; `write` writes it, in the
    transaction that records the events in the inbox, once the one before has committed. Its
    inserts are sent together (`shared.db.writes_together`): no two of them touch one row, and
    it reads nothing back."""

    def carry(self, previous: Self) -> None: ...

    def settle(self) -> None: ...

    async def write(self, session: AsyncSession) -> None: ...


# Builds a transaction's work on its session; handlers reach it as `EventContext.work`.
TransactionWorkFactory = Callable[[AsyncSession, ServiceSettings], TransactionWork]


@dataclass(slots=True)
class EventContext:
    """What a handler gets besides the event: the transaction, an outbox whose events carry
    this event's journey and name it as their cause, the service's settings, and the
    transaction's work if the service has one. (One is made per event; not frozen, as a frozen
    dataclass takes three times as long to make. Handlers only read it.)"""

    session: AsyncSession
    service_outbox: Outbox
    envelope: EnvelopeAttributes
    settings: ServiceSettings
    work: TransactionWork | None = None

    @property
    def outbox(self) -> Outbox:
        """The service's outbox, for events caused by this one (made when a handler asks: most
        handlers of a read model emit nothing)."""
        return self.service_outbox.caused_by(self.envelope)


Handler = Callable[[EventContext, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Selective:
    """A handler of the events of its type that `wants` (given the event's data) says move the
    service. The others are ignored as an event of a type the service has no handler for is:
    counted as ignored, recorded nowhere, in no transaction. Only for events that would change
    nothing: a second delivery of one has no effect to repeat, so there is nothing to record."""

    handle: Handler
    wants: Callable[[Any], bool]


def handler_of(
    handlers: Mapping[str, Handler | Selective], envelope: EnvelopeAttributes, data: EventData
) -> Handler | None:
    """The handler of `handlers` that takes a valid event; None if none wants it. An event its
    handler's `wants` fails on goes to the handler, which takes it or fails it to the DLQ: a bug
    there must not stop the consumer, nor lose an event that may move the service."""
    handler = handlers.get(envelope.type)
    if not isinstance(handler, Selective):
        return handler
    try:
        wanted = handler.wants(data)
    except Exception as exc:
        log.warning(
            "a handler could not tell whether it wants an event",
            extra={"event_type": envelope.type, "error": repr(exc)},
        )
        wanted = True
    return handler.handle if wanted else None


# What a message read turned out to be (one of these three per message; not frozen: a frozen
# dataclass takes three times as long to make).
@dataclass(slots=True)
class _Parsed:
    message: ConsumerRecord[bytes, bytes]
    envelope: EnvelopeAttributes
    handler: Handler
    data: EventData


@dataclass(slots=True)
class _Unreadable:
    """A message that is not an event, or whose data does not match its type: for the DLQ."""

    message: ConsumerRecord[bytes, bytes]
    error: str


@dataclass(slots=True)
class _Ignored:
    """An event of a type this service has no handler for."""

    event_type: str


_Read = _Parsed | _Unreadable | _Ignored
# A fetch read: each partition's messages, and what each turned out to be.
_Fetch = list[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]], list[_Read]]]


@dataclass(slots=True)
class _Handled:
    """A one-writer service's fetch handled ahead of its transaction: the events its work holds
    (the rest duplicates), their ids, the work, and what became of each event."""

    events: list[_Parsed]
    ids: dict[str, None]  # (in the events' order)
    work: OneWriterWork
    outcomes: Counter[tuple[str, str]]


@dataclass(slots=True)
class _Writing:
    """A one-writer service's fetch whose transaction is writing (or has nothing to write): its
    partitions, its events by partition (to apply the classic way if the transaction fails),
    what was handled ahead, and the transaction's task (True once it has committed)."""

    assigned: _Fetch
    batches: list[list[_Parsed]]
    handled: _Handled
    task: asyncio.Task[bool]


# Messages read between two chances for the event loop to run something else (such as a request
# to the service's API).
_READ_SLICE = 100


@contextlib.contextmanager
def _logging_about(envelope: EnvelopeAttributes) -> Iterator[None]:
    """Log lines written meanwhile carry the event's id and journey."""
    token = logs.event.set(envelope)
    try:
        yield
    finally:
        logs.event.reset(token)


async def record_once(session: AsyncSession, envelope: EnvelopeAttributes) -> bool:
    """Record the event as handled; False if it already was (a duplicate delivery)."""
    values = {
        "event_id": envelope.event_id,
        "event_type": envelope.type,
        "source": envelope.source,
        "occurred_at": envelope.time,
        "handled_at": datetime.now(UTC),
    }
    return await insert_if_absent(session, InboxRow, values)


async def record_new(session: AsyncSession, envelopes: Sequence[EnvelopeAttributes]) -> list[bool]:
    """Record a batch's events as handled, in one statement; per event, False if it already was
    or is repeated earlier in the batch. An event recorded meanwhile by another transaction is
    one already handled too: the insert waits for that transaction, then leaves it out."""
    handled_at = datetime.now(UTC)
    rows: dict[str, tuple[str, str, str, datetime, datetime]] = {}
    ids = event_ids(envelopes)
    for envelope, event_id in zip(envelopes, ids, strict=True):
        if event_id not in rows:
            rows[event_id] = (event_id, envelope.type, envelope.source, envelope.time, handled_at)
    inserted = set(
        await insert_many(
            session,
            _INBOX,
            list(rows.values()),
            columns=_INBOX_COLUMNS,
            skip_conflicts_on=[],
            returning="event_id",
        )
    )
    new = []
    for event_id in ids:
        new.append(event_id in inserted)
        inserted.discard(event_id)  # a repeat later in the batch is not new
    return new


async def record_all(
    session: AsyncSession, envelopes: Sequence[EnvelopeAttributes], ids: Sequence[str]
) -> None:
    """Record events as handled (`ids`, their ids, each once), in one statement that looks for
    none of them first: if any was recorded already (or is meanwhile, by a transaction that then
    commits), the statement fails, and `_RecordedAlready` says so; the transaction is to be
    undone. (On PostgreSQL, `ON CONFLICT DO NOTHING` costs the server a third more a row, 5.7
    against 4.0 µs in a throw-away script of 200,000 rows: a look in the index before the row
    goes in, and a record confirming it after.)"""
    handled_at = datetime.now(UTC)
    rows = [
        (event_id, envelope.type, envelope.source, envelope.time, handled_at)
        for envelope, event_id in zip(envelopes, ids, strict=True)
    ]
    try:
        await insert_many(session, _INBOX, rows, columns=_INBOX_COLUMNS)
    except IntegrityError as exc:
        raise _RecordedAlready("an event of the transaction was recorded already") from exc


class _RecordedAlready(Exception):
    """Events handled ahead were recorded in the inbox already: their transaction is undone."""


class InboxConsumer:
    """Consumes `topics` in the service's group and dispatches by event type to `handlers`.

    With `one_writer` (the service runs one replica, and its handlers change nothing but
    through its transaction work, a `OneWriterWork`), a fetch's events are handled while the
    fetch before writes and commits: the event loop's work on one fetch and the database's on
    the other overlap (PostgreSQL's server process; SQLite's connection thread, which takes the
    GIL once a statement)."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        topics: tuple[str, ...],
        handlers: Mapping[str, Handler | Selective],
        outbox: Outbox,
        metrics: ServiceMetrics | None = None,
        *,
        work: TransactionWorkFactory | None = None,
        one_writer: bool = False,
        group_id: str | None = None,
        retry_backoff_s: float = 0.2,
    ) -> None:
        if one_writer and work is None:
            raise ValueError("a one-writer consumer writes through its transaction work")
        self._settings = settings
        self._work = work
        # A one-writer consumer handles each fetch while the one before writes; on SQLite too:
        # its connections' threads take the GIL once a statement, not once a row
        # (`insert_many`, `select_all`), so the fetch writing is not held up row by row by the
        # event loop handling the next one.
        self._ahead = one_writer
        self._writing: _Writing | None = None  # (a fetch handled ahead, being written)
        self._sessions = sessions
        self._topics = topics
        self._handlers = dict(handlers)
        self._outbox = outbox
        self._metrics = metrics
        self._group_id = group_id or settings.group_id
        self._retry_backoff_s = retry_backoff_s
        self._lock = asyncio.Lock()
        self._committing = asyncio.Lock()  # (see `_commit`)
        self._done: dict[TopicPartition, int] = {}  # handled, offset not yet committed
        self._positions: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None
        self.assigned = asyncio.Event()

    def restarted(self, group_id: str) -> InboxConsumer:
        """A new consumer like this one (stopped first) in the consumer group `group_id`."""
        return InboxConsumer(
            self._settings,
            self._sessions,
            self._topics,
            self._handlers,
            self._outbox,
            self._metrics,
            work=self._work,
            one_writer=self._ahead,
            group_id=group_id,
            retry_backoff_s=self._retry_backoff_s,
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"inbox-{self._settings.service}")

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Finish the batch in hand, commit its offsets, leave the group."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except TimeoutError:
                log.warning("consumer did not drain in time")
        if self._dlq is not None:
            await self._dlq.stop()
            self._dlq = None

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            consumer = create_consumer(self._settings, self._group_id)
            consumer.subscribe(
                list(self._topics), listener=CommitOnRevoke(consumer, self._done, self._lock)
            )
            try:
                await consumer.start()
                self._consumer = consumer
                backoff = 0.2
                await self._consume(consumer)
            except Exception as exc:
                cause = "broker" if isinstance(exc, KafkaError) else "fault"
                if cause == "broker":
                    log.warning("consumer failed; restarting", extra={"error": repr(exc)})
                else:  # a fault of the service's own: seen, and the consumer goes on
                    log.exception("consumer failed unexpectedly; restarting")
                if self._metrics is not None:  # (a consumer that keeps restarting: an alert)
                    self._metrics.consumer_restarts(cause=cause).inc()
                await self._wait_stopping(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self._consumer = None
                self.assigned.clear()
                await consumer.stop()

    async def _wait_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch, apply, commit; the next fetch is fetched and read meanwhile (while a fetch's
        transaction waits on the database, the event loop parses the next one), and a fetch's
        offsets are committed while the next one is applied. A fetch read ahead and not
        applied when the consumer stops is not committed: it is fetched again. (A one-writer
        service's last fetch, still writing then, is waited for and committed.)"""
        ahead: asyncio.Task[_Fetch] | None = None
        committing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                if ahead is None:
                    ahead = asyncio.create_task(self._fetch(consumer))
                await self._commit_written_meanwhile(consumer, ahead)
                fetch = await ahead
                ahead = asyncio.create_task(self._fetch(consumer))
                await self._apply_fetch(consumer, fetch)
                # The fetch's offsets committed while the next one is applied: the broker's
                # answer is a wait in which the event loop may have nothing else to do (one
                # commit at a time, in order: `_commit`). One that fails fails at the next.
                if committing is not None:
                    await committing
                committing = asyncio.create_task(self._commit(consumer))
                self._record_lag(consumer)
            await self._drain()
            if committing is not None:
                await committing
            await self._commit(consumer)
        finally:
            for task in (ahead, committing):
                if task is not None:
                    task.cancel()  # (nothing, if done)
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            # (after a failure: written, or applied again; committed by the next consumer)
            await self._drain()

    async def _commit_written_meanwhile(
        self, consumer: AIOKafkaConsumer, ahead: asyncio.Task[_Fetch]
    ) -> None:
        """While the next fetch is awaited, a fetch handled ahead whose transaction ends is
        seen to (`_written`) and its offsets committed then, not once the next fetch comes:
        when the topics go quiet, that is only at the end of the fetch's wait."""
        writing = self._writing
        if writing is None or ahead.done():
            return
        await asyncio.wait((ahead, writing.task), return_when=asyncio.FIRST_COMPLETED)
        if writing.task.done() and not ahead.done():
            await self._drain()
            await self._commit(consumer)

    async def _fetch(self, consumer: AIOKafkaConsumer) -> _Fetch:
        """The next fetch, its messages read."""
        batch = await consumer.getmany(
            timeout_ms=500, max_records=self._settings.consumer_batch_size
        )
        if consumer.assignment():
            self.assigned.set()
        for tp in consumer.assignment():
            if tp not in batch:  # nothing new: the position is where the group left off
                with contextlib.suppress(IllegalStateError):
                    self._positions[tp] = await consumer.position(tp)
        return await self._read_fetch(list(batch.items()))

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the offsets done so far. One commit at a time, in the order they took them:
        one running behind (`_consume`) is never overtaken by a later one, whose newer offsets
        it would then overwrite."""
        async with self._committing:
            async with self._lock:
                offsets = {tp: o for tp, o in self._done.items() if tp in consumer.assignment()}
                self._done.clear()
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as exc:
                # A rebalance took the partitions; their next owner re-reads, the inbox dedupes.
                log.info("offset commit skipped after rebalance", extra={"error": str(exc)})

    def lag(self) -> int | None:
        """Events on the assigned partitions not handled yet; None before an assignment."""
        consumer = self._consumer
        if consumer is None or not consumer.assignment():
            return None
        total = 0
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                return None
            total += max(end - self._positions.get(tp, 0), 0)
        return total

    def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        if self._metrics is None:
            return
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            position = self._positions.get(tp)
            if end is not None and position is not None:
                self._metrics.consumer_lag(topic=tp.topic, partition=str(tp.partition)).set(
                    max(end - position, 0)
                )

    async def _read_fetch(
        self, partitions: list[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]
    ) -> _Fetch:
        """A fetch's messages (by partition) read: parsed and validated."""
        return [(tp, messages, await self._read(messages)) for tp, messages in partitions]

    async def _apply_fetch(self, consumer: AIOKafkaConsumer, fetch: _Fetch) -> None:
        """Apply a fetch read: the events of every partition still assigned, in one transaction.
        If any event fails in it, each partition's are applied in a transaction of their own,
        and if one of those fails, its events one by one (so that only the failing one retries
        and, at last, goes to the DLQ). One transaction a fetch rather than a partition: when a
        fetch holds a few events of each of many partitions (as it does once a service keeps up
        with its topics), a fact or a daily total that several of them touch is written once,
        and the fetch is committed once.

        A one-writer service's fetch is handled while the fetch before writes (`_apply_ahead`);
        this then returns once that one has committed and this one's transaction has begun
        (`_drain` waits for it)."""
        # (a partition revoked meanwhile is skipped: its new owner takes the rest)
        assigned = [entry for entry in fetch if entry[0] in consumer.assignment()]
        if self._ahead:
            await self._apply_ahead(assigned)
            return
        async with self._lock:
            await self._apply_sorted([await self._sort_out(items) for _, _, items in assigned])
            self._mark(assigned)

    async def _apply_sorted(self, batches: list[list[_Parsed]]) -> None:
        """Apply each partition's events (`batches`): all in one transaction, or else as
        `_apply_fetch` says."""
        batches = [ready for ready in batches if ready]
        together = [parsed for ready in batches for parsed in ready]
        if len(batches) < 2 or not await self._apply_together(together):
            for ready in batches:
                await self._apply_batch(ready)

    def _mark(self, assigned: _Fetch) -> None:
        """The partitions' fetched events applied: their offsets to commit."""
        for tp, messages, _ in assigned:
            self._done[tp] = self._positions[tp] = messages[-1].offset + 1

    async def _apply_ahead(self, assigned: _Fetch) -> None:
        """A one-writer service's fetch: its events handled (on a session that only reads, the
        rows the fetch before changed taken from its work) while the fetch before writes; then,
        once that one has committed, this one's transaction begun. If that one failed (and was
        applied again), or this one failed to be handled (or has no events), this one is
        applied the classic way."""
        batches = [await self._sort_out(items) for _, _, items in assigned]
        events = [parsed for ready in batches for parsed in ready]
        previous, self._writing = self._writing, None
        handled = None
        if events:  # (a fetch with none, as while the topics are quiet, has nothing to write)
            handled = await self._handle_ahead(events, previous.handled if previous else None)
        if not await self._written(previous) or handled is None:
            async with self._lock:
                await self._apply_sorted(batches)
                self._mark(assigned)
            return
        task = asyncio.create_task(self._write(handled))
        self._writing = _Writing(assigned, batches, handled, task)

    async def _handle_ahead(
        self, events: list[_Parsed], previous: _Handled | None
    ) -> _Handled | None:
        """`events` handled by a new work on a session that only reads, the work settled;
        None if any failed (nothing is written either way). An event the fetch before holds, or
        one repeated earlier in this fetch, is a duplicate."""
        outcomes: Counter[tuple[str, str]] = Counter()
        seen = previous.ids if previous is not None else {}
        fresh: list[_Parsed] = []
        ids: dict[str, None] = {}
        for parsed, event_id in zip(events, event_ids([p.envelope for p in events]), strict=True):
            if event_id in seen or event_id in ids:
                outcomes[parsed.envelope.type, "duplicate"] += 1
            else:
                fresh.append(parsed)
                ids[event_id] = None
        try:
            async with self._sessions() as session, session.begin():
                await read_only(session)
                make = cast(TransactionWorkFactory, self._work)  # (given: see `__init__`)
                work = cast(OneWriterWork, make(session, self._settings))
                if previous is not None:
                    work.carry(previous.work)
                await work.prepare([(p.envelope, p.data) for p in fresh])
                for position, parsed in enumerate(fresh):
                    if position % _READ_SLICE == 0:  # (the transaction writing gets its turns)
                        await asyncio.sleep(0)
                    envelope = parsed.envelope
                    token = logs.event.set(envelope)  # (as in `_apply_together`)
                    try:
                        await parsed.handler(self._context(session, envelope, work), parsed.data)
                    finally:
                        logs.event.reset(token)
                    outcomes[envelope.type, "handled"] += 1
                work.settle()
        except Exception as exc:
            log.info("handling a fetch ahead failed", extra={"error": repr(exc)})
            return None
        return _Handled(fresh, ids, work, outcomes)

    async def _write(self, handled: _Handled) -> bool:
        """The events of `handled` recorded in the inbox and its work written, in one
        transaction; False, and nothing written, if any of them was recorded already (its
        work counted it afresh) or anything failed."""
        try:
            async with self._sessions() as session, session.begin():
                envelopes = [parsed.envelope for parsed in handled.events]
                await record_all(session, envelopes, list(handled.ids))
                async with writes_together(session):
                    await handled.work.write(session)
        except Exception as exc:
            log.info("a fetch handled ahead was not written", extra={"error": repr(exc)})
            return False
        return True

    async def _written(self, writing: _Writing | None) -> bool:
        """Wait for a one-writer service's fetch to be written; if it was not, apply it the
        classic way. Its offsets are then to commit. Whether it was written as handled."""
        if writing is None:
            return True
        written = await writing.task
        async with self._lock:
            if written:
                for (event_type, outcome), count in writing.handled.outcomes.items():
                    self._count(event_type, outcome, count)
            else:
                await self._apply_sorted(writing.batches)
            self._mark(writing.assigned)
        return written

    async def _drain(self) -> None:
        """Wait for the fetch being written, if any (see `_written`)."""
        writing, self._writing = self._writing, None
        await self._written(writing)

    async def _sort_out(self, read: list[_Read]) -> list[_Parsed]:
        """The events of `read` to apply; the messages that cannot be read go to the DLQ, and
        the events with no handler are counted."""
        ready = []
        for item in read:
            if isinstance(item, _Parsed):
                ready.append(item)
            elif isinstance(item, _Unreadable):
                await self._dead_letter(item.message, item.error, "unparseable")
            else:
                self._count(item.event_type, "ignored")
        return ready

    async def _apply_batch(self, ready: list[_Parsed]) -> None:
        """Apply a partition's events in one transaction; if any event fails in it, one by
        one."""
        if len(ready) > 1 and await self._apply_together(ready):
            return
        for parsed in ready:
            with _logging_about(parsed.envelope):
                await self._apply(parsed.message, parsed.envelope, parsed.handler, parsed.data)

    async def _read(self, messages: list[ConsumerRecord[bytes, bytes]]) -> list[_Read]:
        """Each message read, letting the event loop run something else every few of them."""
        read = []
        for start in range(0, len(messages), _READ_SLICE):
            if start:
                await asyncio.sleep(0)
            read += [self._read_one(m) for m in messages[start : start + _READ_SLICE]]
        return read

    def _read_one(self, message: ConsumerRecord[bytes, bytes]) -> _Read:
        raw = message.value or b""
        if (event := parse_event(raw)) is not None:  # most are: read in one validation
            return self._to_handle(message, *event)
        try:  # (read again, in two steps, to say what is wrong)
            envelope = parse_envelope(raw)
        except EventParseError as exc:
            return _Unreadable(message, f"unparseable event: {exc}")
        if envelope.type not in self._handlers:
            return _Ignored(envelope.type)
        try:
            data = decode(envelope)
        except EventParseError as exc:
            return _Unreadable(message, f"invalid event data: {exc}")
        return self._to_handle(message, envelope, data)

    def _to_handle(
        self, message: ConsumerRecord[bytes, bytes], envelope: EnvelopeAttributes, data: EventData
    ) -> _Parsed | _Ignored:
        """A valid event, to handle; or to ignore, if no handler wants it (`handler_of`)."""
        handler = handler_of(self._handlers, envelope, data)
        if handler is None:
            return _Ignored(envelope.type)
        return _Parsed(message, envelope, handler, data)

    async def _apply_together(self, ready: list[_Parsed]) -> bool:
        """All of `ready` in one transaction; False (and nothing applied) if any failed."""
        outcomes: Counter[tuple[str, str]] = Counter()
        try:
            async with self._sessions() as session, session.begin():
                recorded = await record_new(session, [parsed.envelope for parsed in ready])
                fresh = []
                for parsed, new in zip(ready, recorded, strict=True):
                    if new:
                        fresh.append(parsed)
                    else:
                        outcomes[parsed.envelope.type, "duplicate"] += 1
                work = await self._prepare(session, [(p.envelope, p.data) for p in fresh])
                for parsed in fresh:
                    envelope = parsed.envelope
                    # (what `_logging_about` does, without a context manager: once per event)
                    token = logs.event.set(envelope)
                    try:
                        await parsed.handler(self._context(session, envelope, work), parsed.data)
                    finally:
                        logs.event.reset(token)
                    outcomes[envelope.type, "handled"] += 1
                if work is not None:
                    await work.finish()
        except Exception as exc:
            log.info("batch failed; applying its events one by one", extra={"error": repr(exc)})
            return False
        for (event_type, outcome), count in outcomes.items():
            self._count(event_type, outcome, count)
        return True

    async def _apply(
        self,
        message: ConsumerRecord[bytes, bytes],
        envelope: EnvelopeAttributes,
        handler: Handler,
        data: EventData,
    ) -> None:
        attempts = self._settings.consumer_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self._sessions() as session, session.begin():
                    if not await record_once(session, envelope):
                        self._count(envelope.type, "duplicate")
                        return
                    work = await self._prepare(session, [(envelope, data)])
                    await handler(self._context(session, envelope, work), data)
                    if work is not None:
                        await work.finish()
                self._count(envelope.type, "handled")
                return
            except Exception as exc:
                if attempt == attempts:
                    log.exception("event handler failed; sending to the DLQ")
                    await self._dead_letter(
                        message, f"handler failed after {attempts} attempts: {exc!r}", "failed"
                    )
                    return
                log.warning(
                    "event handler failed; retrying",
                    extra={"attempt": attempt, "error": repr(exc)},
                )
                await asyncio.sleep(self._retry_backoff_s * 2 ** (attempt - 1))

    async def _prepare(
        self, session: AsyncSession, events: list[tuple[EnvelopeAttributes, EventData]]
    ) -> TransactionWork | None:
        """The transaction's work, prepared for `events` (None if the service has none)."""
        if self._work is None:
            return None
        work = self._work(session, self._settings)
        await work.prepare(events)
        return work

    def _context(
        self, session: AsyncSession, envelope: EnvelopeAttributes, work: TransactionWork | None
    ) -> EventContext:
        return EventContext(session, self._outbox, envelope, self._settings, work)

    def _count(self, event_type: str, outcome: str, count: int = 1) -> None:
        if self._metrics is not None:
            self._metrics.events_handled(type=event_type, outcome=outcome).inc(count)

    async def _dead_letter(
        self, message: ConsumerRecord[bytes, bytes], error: str, kind: str
    ) -> None:
        """Publish the message with its error to the DLQ; keep trying, it must not be lost."""
        record = dead_letter_record(message, error, kind, self._settings.service)
        backoff = 0.2
        while True:
            try:
                if self._dlq is None:
                    producer = create_producer(self._settings)
                    await producer.start()
                    self._dlq = producer
                async with asyncio.timeout(30):
                    await self._dlq.send_and_wait(
                        DLQ_TOPIC,
                        value=orjson.dumps(record),
                        key=message.key,
                        headers=[
                            *(message.headers or ()),
                            ("baton-dlq-error", error[:500].encode()),
                        ],
                    )
                break
            except (KafkaError, TimeoutError) as exc:
                if self._dlq is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._dlq.stop(), 5)
                    self._dlq = None
                if self._stopping.is_set():
                    raise
                log.warning("DLQ publish failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        log.warning("event sent to the DLQ", extra={"error": error, "offset": message.offset})
        if self._metrics is not None:
            self._metrics.dlq_sent.inc()


def dead_letter_record(
    message: ConsumerRecord[bytes, bytes], error: str, kind: str, service: str
) -> dict[str, Any]:
    """What a DLQ message carries: where the original came from, the error, and its bytes."""
    raw = message.value or b""
    try:
        payload: dict[str, str] = {"payload": raw.decode()}
    except UnicodeDecodeError:
        payload = {"payload_base64": base64.b64encode(raw).decode()}
    return {
        "service": service,
        "kind": kind,
        "error": error,
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": message.key.decode(errors="replace") if message.key else None,
        "timestamp": message.timestamp,
        "failed_at": datetime.now(UTC).isoformat(),
        **payload,
    }
