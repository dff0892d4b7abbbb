"""The KPI consumer's own work an event, without the broker: for profiling, not a target.

`bench.kpi_ingest` times the KPI service end to end, broker and all; its figures move from hour
to hour on this machine. This hands the same funnel of events, already fetched (fetches of the
service's `consumer_batch_size` messages, in publishing order, each message in the partition
the publisher's key would put it in), to the KPI service's inbox consumer, on a fresh database
each round, and gives its time an event: wall, and the CPU meanwhile of the event loop's thread
and of this process (with SQLite, its driver's thread too). Against it, as the raw baseline,
the same messages parsed with orjson.

Two uses:
- two versions of the code timed side by side, each pinned to a core of its own
  (`taskset -c 0 ... & taskset -c 1 ...`), run in the checkout of each: their difference is
  less at the mercy of the hour than two runs of `bench.kpi_ingest` in turn;
- the instructions an event counted under valgrind, without noise: the count of a run with
  `--apply` less that of one with `--no-apply` (which builds the same fetches and applies
  none), over the events:

      valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \\
          .venv/bin/python -m bench.kpi_replay --db sqlite --events 6000 --rounds 1

    .venv/bin/python -m bench.kpi_replay [--db sqlite|postgres|both] [--events 20000]
                                         [--rounds 3] [--no-apply]

The consumer is driven through its fetch handlers (`InboxConsumer._read_fetch`, then
`_apply_fetch`, and at the end `_drain` for the last fetch's transaction), the steps after
`getmany`; the partitions are the assignment of a stand-in for the consumer. (The service reads
the next fetch while it applies one; here each is read, then applied. A fetch is handled while
the one before writes, here as in the service.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import uvloop
from aiokafka import ConsumerRecord, TopicPartition

from bench.fleet import Stopwatch, Took, add_database_option, chosen_databases, database
from bench.kpi_ingest import funnel
from services.kpi.app import SPEC as KPI
from services.kpi.settings import Settings
from shared.app import tune_interpreter
from shared.db import create_engine, session_factory
from shared.events import parse_event
from shared.inbox import InboxConsumer
from shared.migrations import upgrade
from shared.outbox import Outbox
from shared.partitions import partition_of
from shared.settings import topic_of

Fetch = list[tuple[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]


def fetches(count: int, size: int, partitions: int) -> list[Fetch]:
    """The funnel's `count` events as the consumer would fetch them, `size` at a time."""
    ends: dict[TopicPartition, int] = {}
    records = []
    for envelope in funnel(count):
        key = envelope.partitionkey.encode()
        partition = partition_of(key, range(partitions))  # (the publisher's partitioner)
        tp = TopicPartition(topic_of(envelope.source.rsplit("/", 1)[1]), partition)
        offset = ends[tp] = ends.get(tp, -1) + 1
        value = envelope.to_json()
        records.append(
            ConsumerRecord(
                tp.topic, partition, offset, 0, 0, key, value, None, len(key), len(value), []
            )
        )
    out = []
    for start in range(0, len(records), size):
        by_partition: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        for record in records[start : start + size]:
            by_partition.setdefault(TopicPartition(record.topic, record.partition), []).append(
                record
            )
        out.append(list(by_partition.items()))
    return out


class Assigned:
    """A stand-in for the consumer, holding every partition."""

    def __init__(self, partitions: set[TopicPartition]) -> None:
        self._partitions = partitions

    def assignment(self) -> set[TopicPartition]:
        return self._partitions


async def one_round(url: str, batches: list[Fetch], apply: bool) -> Took:
    """The time the KPI consumer took to apply `batches` on a fresh database at `url`."""
    settings = Settings(database_url=url, kafka_bootstrap="127.0.0.1:9")  # (never reached)
    engine = create_engine(settings.db_url)
    await upgrade(engine, KPI.name, KPI.migrations)
    consumer = InboxConsumer(
        settings,
        session_factory(engine),
        KPI.consumes,
        KPI.handlers,
        Outbox(settings.topic, settings.outbox_lanes),
        work=KPI.transaction_work,
        one_writer=KPI.one_writer,
    )
    assigned = Assigned({tp for batch in batches for tp, _ in batch})
    tune_interpreter(settings.consumer_batch_size)
    try:
        stopwatch = Stopwatch()
        for batch in batches if apply else ():  # (the steps after `getmany`)
            await consumer._apply_fetch(assigned, await consumer._read_fetch(batch))
        await consumer._drain()  # (the last fetch's transaction)
        return stopwatch.took()
    finally:
        await engine.dispose()


def raw_parse(batches: list[Fetch]) -> float:
    """Seconds the raw baseline takes: every message of `batches` parsed with orjson."""
    start = time.perf_counter()
    for batch in batches:
        for _, records in batch:
            for record in records:
                orjson.loads(record.value or b"")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--apply", action=argparse.BooleanOptionalAction, default=True, help="(see above)"
    )
    args = parser.parse_args()
    settings = Settings()
    batches = fetches(args.events, settings.consumer_batch_size, settings.kafka_partitions)
    count = sum(len(records) for batch in batches for _, records in batch)
    parse_event(batches[0][0][1][0].value or b"")  # (its validators are built at first use)
    raw = statistics.median(raw_parse(batches) for _ in range(args.rounds)) / count * 1e6
    print(f"KPI consumer on fetched events, {count:,} events, median of {args.rounds} rounds")
    print(f"{'database':<10}{'wall µs':>9}{'loop µs':>9}{'process':>9}{'raw µs':>8}{'x raw':>7}")
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as name:
        for db in chosen_databases(args):
            rounds = []
            for n in range(args.rounds):
                with database(db, Path(name), f"kpi{n}") as url:
                    rounds.append(uvloop.run(one_round(url, batches, args.apply)))
            wall, loop, process = (
                statistics.median(getattr(r, side) for r in rounds) / count * 1e6
                for side in ("wall", "loop_cpu", "process_cpu")
            )
            print(f"{db:<10}{wall:>9.1f}{loop:>9.1f}{process:>9.1f}{raw:>8.2f}{wall / raw:>7.1f}")


if __name__ == "__main__":
    main()
