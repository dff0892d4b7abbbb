"""The inbox (DESIGN §4): consume, apply each event once, commit offsets after the database.

Each event's id is recorded in the same transaction as the handler's effect, so a redelivered
event is a no-op. The Kafka offset is committed only after that transaction commits. An event that
cannot be read, or whose handler keeps failing, goes to `baton.dlq` with the error, and the
consumer carries on with the next one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from shared import logs
from shared.bus import CommitOnRevoke, create_consumer, create_producer
from shared.db import PlumbingBase, UTCDateTime, insert_if_absent
from shared.events import Envelope, EventData, EventParseError, decode, parse_envelope
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


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a handler gets besides the event: the transaction, and an outbox whose events
    carry this event's journey and name it as their cause."""

    session: AsyncSession
    outbox: Outbox
    envelope: Envelope


Handler = Callable[[EventContext, Any], Awaitable[None]]


async def record_once(session: AsyncSession, envelope: Envelope) -> bool:
    """Record the event as handled; False if it already was (a duplicate delivery)."""
    values = {
        "event_id": str(envelope.id),
        "event_type": envelope.type,
        "source": envelope.source,
        "occurred_at": envelope.time,
        "handled_at": datetime.now(UTC),
    }
    return await insert_if_absent(session, InboxRow, values)


class InboxConsumer:
    """Consumes `topics` in the service's group and dispatches by event type to `handlers`."""

    def __init__(
        self,
        settings: ServiceSettings,
        sessions: async_sessionmaker[AsyncSession],
        topics: tuple[str, ...],
        handlers: Mapping[str, Handler],
        outbox: Outbox,
        metrics: ServiceMetrics | None = None,
        *,
        group_id: str | None = None,
        retry_backoff_s: float = 0.2,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._topics = topics
        self._handlers = dict(handlers)
        self._outbox = outbox
        self._metrics = metrics
        self._group_id = group_id or settings.group_id
        self._retry_backoff_s = retry_backoff_s
        self._lock = asyncio.Lock()
        self._done: dict[TopicPartition, int] = {}  # handled, offset not yet committed
        self._positions: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._dlq: AIOKafkaProducer | None = None
        self.assigned = asyncio.Event()

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
            except KafkaError as exc:
                log.warning("consumer failed; restarting", extra={"error": repr(exc)})
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
        while not self._stopping.is_set():
            batch = await consumer.getmany(
                timeout_ms=500, max_records=self._settings.consumer_batch_size
            )
            if consumer.assignment():
                self.assigned.set()
            for tp, messages in batch.items():
                for message in messages:
                    async with self._lock:
                        if tp not in consumer.assignment():
                            break  # revoked during this batch: the new owner takes the rest
                        await self._handle(message)
                        self._done[tp] = self._positions[tp] = message.offset + 1
            await self._commit(consumer)
            self._record_lag(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        async with self._lock:
            offsets = {tp: o for tp, o in self._done.items() if tp in consumer.assignment()}
            self._done.clear()
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions; their next owner re-reads and the inbox dedupes.
            log.info("offset commit skipped after rebalance", extra={"error": str(exc)})

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

    async def _handle(self, message: ConsumerRecord[bytes, bytes]) -> None:
        try:
            envelope = parse_envelope(message.value or b"")
        except EventParseError as exc:
            await self._dead_letter(message, f"unparseable event: {exc}", "unparseable")
            return
        handler = self._handlers.get(envelope.type)
        if handler is None:
            self._count(envelope.type, "ignored")
            return
        try:
            data = decode(envelope)
        except EventParseError as exc:
            await self._dead_letter(message, f"invalid event data: {exc}", "unparseable")
            return
        event_token = logs.event_id.set(str(envelope.id))
        correlation_token = logs.correlation_id.set(envelope.correlationid)
        try:
            await self._apply(message, envelope, handler, data)
        finally:
            logs.event_id.reset(event_token)
            logs.correlation_id.reset(correlation_token)

    async def _apply(
        self,
        message: ConsumerRecord[bytes, bytes],
        envelope: Envelope,
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
                    outbox = self._outbox.caused_by(envelope)
                    await handler(EventContext(session, outbox, envelope), data)
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

    def _count(self, event_type: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.events_handled(type=event_type, outcome=outcome).inc()

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
