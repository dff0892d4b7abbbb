"""The services as `baton up` runs them (the embedded broker, one `baton serve` per service),
on free ports and a temporary data dir, for the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from baton.broker import EmbeddedBroker, free_ports
from baton.supervisor import Supervisor
from shared.bus import ensure_topics
from shared.settings import ALL_TOPICS, SERVICES, BatonSettings

SECRET = "bench-secret-" + "x" * 40
PG_DSN = os.environ.get("BATON_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASES = ("sqlite", "postgres")


def add_database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", choices=(*DATABASES, "both"), default="both")


def chosen_databases(args: argparse.Namespace) -> tuple[str, ...]:
    """The databases `--db` asks for, in order."""
    return DATABASES if args.db == "both" else (args.db,)


def asyncpg_dsn(url: str) -> str:
    """A service's database URL (postgresql+asyncpg://...) as asyncpg takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlite_path(url: str) -> str:
    """The file of a service's SQLite database URL (sqlite+aiosqlite:///...)."""
    return url.removeprefix("sqlite+aiosqlite:///")


async def copy_tables(
    url: str, copies: Sequence[tuple[str, str]], *, with_rows: bool = False
) -> None:
    """For each `(table, copy)` of the database at `url`: a new table `copy` with the columns and
    indexes of `table` (and its rows, `with_rows`), for a raw baseline or a floor to fill."""
    if url.startswith("postgresql"):
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            for table, copy in copies:
                await connection.execute(f"CREATE TABLE {copy} (LIKE {table} INCLUDING ALL)")
                if with_rows:
                    await connection.execute(f"INSERT INTO {copy} SELECT * FROM {table}")
                    await connection.execute(f"ANALYZE {copy}")
        finally:
            await connection.close()
        return
    with contextlib.closing(sqlite_writer(sqlite_path(url))) as connection:
        for table, copy in copies:
            schema = connection.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", (table,)
            ).fetchall()
            for (sql,) in schema:
                connection.execute(sql.replace(table, copy))
            if with_rows:
                connection.execute(f"INSERT INTO {copy} SELECT * FROM {table}")


def sqlite_writer(path: str, *, any_thread: bool = False) -> sqlite3.Connection:
    """A sqlite3 connection set as the services set theirs (WAL, synchronous=NORMAL, a 30 s busy
    timeout), in autocommit mode: the caller writes BEGIN IMMEDIATE .. COMMIT. With `any_thread`,
    usable from threads other than its own (one at a time)."""
    connection = sqlite3.connect(
        path, timeout=30, isolation_level=None, check_same_thread=not any_thread
    )
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
        connection.execute(f"PRAGMA {pragma}")
    return connection


def lead_captured_json(event_id: str, lead_id: str, data: dict[str, Any], at: datetime) -> str:
    """A LeadCaptured envelope of the marketing service, as JSON written by hand (a floor's
    event: no models, no validation)."""
    envelope = {
        "specversion": "1.0",
        "id": event_id,
        "source": "/services/marketing",
        "type": "baton.LeadCaptured.v1",
        "time": at,
        "subject": lead_id,
        "datacontenttype": "application/json",
        "partitionkey": lead_id,
        "correlationid": lead_id,
        "data": {"lead_id": lead_id, **data},
    }
    return orjson.dumps(envelope).decode()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]  # nearest rank


@contextlib.contextmanager
def fleet(*services: str, **env: str) -> Iterator[Supervisor]:
    """`services` (default: all five) running and ready; stopped, with the broker, on exit."""
    names = list(services or SERVICES)
    with (
        tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp,
        EmbeddedBroker(log_file=Path(tmp) / "broker.log") as broker,
    ):
        asyncio.run(ensure_topics(BatonSettings(kafka_bootstrap=broker.bootstrap), ALL_TOPICS))
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        environment = {
            **os.environ,
            "BATON_DATA_DIR": tmp,
            "BATON_KAFKA_BOOTSTRAP": broker.bootstrap,
            "BATON_KAFKA_IDEMPOTENCE": "false",
            "BATON_JWT_SECRET": SECRET,
            "BATON_LOG_FORMAT": "json",
            "BATON_LOG_LEVEL": "WARNING",
            **{f"BATON_{name.upper()}_PORT": str(port) for name, port in ports.items()},
            **env,
        }
        supervisor = Supervisor(Path(tmp), environment)
        supervisor.start(ports)
        try:
            late = supervisor.wait_ready(120)
            if late:
                raise RuntimeError(f"not ready: {[c.service for c in late]}")
            yield supervisor
        finally:
            supervisor.stop()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process, in MiB: now (`VmRSS`), or at its peak (`VmHWM`)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def print_ratios(
    title: str, labels: tuple[str, str], results: dict[str, tuple[float, float]], target: float
) -> None:
    """A table of the rates measured per database, each against its raw baseline and `target`."""
    print(title)
    print(f"{'database':<10}{labels[0]:>14}{labels[1]:>14}{'ratio':>8}  target")
    for db, (rate, raw) in results.items():
        verdict = "ok" if rate / raw >= target else "MISSED"
        print(f"{db:<10}{rate:>14,.0f}{raw:>14,.0f}{rate / raw:>8.1%}  >= {target:.0%}: {verdict}")


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_DSN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database `baton_bench_<hex>`, dropped on exit; yields its URL
    (postgresql+asyncpg://...), as `BATON_<SERVICE>_DATABASE_URL` takes it."""
    name = f"baton_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def database(db: str, tmp: Path, service: str) -> Iterator[str]:
    """A fresh database URL of kind `db` for `service`: a throw-away PostgreSQL database
    (dropped on exit) or a new SQLite file in `tmp`."""
    if db == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp / f'{service}-{uuid.uuid4().hex[:6]}.db'}"


@dataclass(frozen=True, slots=True)
class Took:
    """A side's time: wall seconds; the CPU seconds meanwhile of the event loop's thread, of
    this process (every thread: the loop's, SQLite's), and of the whole machine (every
    process: this one, the broker, PostgreSQL), or None where the system does not tell (no
    /proc/stat)."""

    wall: float
    loop_cpu: float
    process_cpu: float
    machine_cpu: float | None


class Stopwatch:
    """Wall time, the CPU time of the thread it was started on (the event loop's), the
    process's, and the machine's."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        self._process, self._machine = time.process_time(), machine_cpu_seconds()

    def took(self) -> Took:
        wall, cpu, process = time.perf_counter(), time.thread_time(), time.process_time()
        machine = machine_cpu_seconds()
        used = None if machine is None or self._machine is None else machine - self._machine
        return Took(wall - self._wall, cpu - self._cpu, process - self._process, used)


def machine_cpu_seconds() -> float | None:
    """CPU seconds the machine's processors have been busy since boot, all processes together
    (user, nice, system, irq, softirq in /proc/stat; not idle, I/O wait or steal)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
