"""Lead ingest throughput: `POST /v1/leads` (bearer auth, validation, lead + outbox row in one
transaction) on the marketing service as `baton serve` runs it (one uvicorn worker, the relay
publishing to the embedded broker), against a bare uvicorn + FastAPI process
started with the same uvicorn options whose endpoint validates the same body (LeadCreate) and
writes nothing, and against the floor: that process plus the durable write, by hand.
The load comes from a separate process: 32 keep-alive connections, each one request at a time,
every lead a new email. Requests/s, median over rounds (bare, floor and service rounds alternate).
Targets: >= 50% of bare on PostgreSQL, >= 40% on SQLite.

The floor is started as the bare process is (uvloop, httptools, one worker); its endpoint validates
the body, then with the raw driver, no ORM, writes the lead row (primary key, unique email) and one
outbox row (a JSON envelope as text, ~550 bytes as LeadCaptured's) into two small tables it creates
at start-up, and answers 201 with the body once they are committed (409 for a known email). Its
writes are grouped as the service's are (`shared.group_commit`): the requests waiting when a writer
is free go in one transaction. It has no auth (the service's verifier caches a checked token: auth
costs it little). On PostgreSQL: an asyncpg pool of 20 connections (as many as the service's engine
may open) on the service's scratch database, tables bench_floor_leads and bench_floor_outbox; per
group BEGIN, the leads as one array per column (ON CONFLICT (email) DO NOTHING RETURNING id), the
events of those that went in likewise, COMMIT; two groups at once, as the service. On SQLite: stdlib
sqlite3 on a file of a temp dir, WAL and synchronous=NORMAL as the service has them, BEGIN
IMMEDIATE, one INSERT per row, COMMIT, on one connection in one dedicated thread (SQLite has one
writer at a time). The floor is thus the ceiling, on this machine and database, of an endpoint with
the service's guarantees (each 201 after its commit, the event in the same transaction): the service
does all the floor does and more, so its ratio to bare cannot exceed the floor's, and a target above
the floor's ratio is out of reach on this machine.

    .venv/bin/python -m bench.lead_ingest [--db sqlite|postgres|both] [--requests 5000]
                                           [--warmup 1000] [--rounds 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import fastapi
import httpx
import orjson

from baton.broker import free_port
from bench.fleet import (
    SECRET,
    add_database_option,
    asyncpg_dsn,
    chosen_databases,
    fleet,
    lead_captured_json,
    postgres_database,
    sqlite_writer,
)
from services.marketing.schemas import LeadCreate
from shared.auth import mint_token
from shared.ids import new_id
from shared.runtime import GROUP_WRITERS_POSTGRES
from shared.settings import topic_of

TARGETS = {"sqlite": 0.40, "postgres": 0.50}
BARE_APP = """
import sys
import fastapi, uvicorn
from services.marketing.schemas import LeadCreate
app = fastapi.FastAPI()
@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
@app.post("/v1/leads", status_code=201)
async def create_lead(body: LeadCreate) -> LeadCreate:
    return body
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            lifespan="on", proxy_headers=True, log_level="warning")
"""
FLOOR_APP = """
import sys
from bench.lead_ingest import serve_floor
serve_floor(int(sys.argv[1]), sys.argv[2])
"""
FLOOR_POOL_SIZE = 20  # the service's engine: pool_size 10 + max_overflow 10
FLOOR_TABLES = {
    "postgres": (
        """CREATE TABLE IF NOT EXISTS bench_floor_leads (
            id text PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL,
            company text NOT NULL, title text, source text NOT NULL,
            captured_at timestamptz NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS bench_floor_outbox (
            id bigserial PRIMARY KEY, topic text NOT NULL, key text NOT NULL,
            payload text NOT NULL, created_at timestamptz NOT NULL)""",
    ),
    "sqlite": (
        """CREATE TABLE IF NOT EXISTS bench_floor_leads (
            id TEXT PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
            company TEXT NOT NULL, title TEXT, source TEXT NOT NULL, captured_at TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS bench_floor_outbox (
            id INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL,
            payload TEXT NOT NULL, created_at TEXT NOT NULL)""",
    ),
}
FLOOR_INSERT_LEAD = (
    "INSERT INTO bench_floor_leads (id, email, name, company, title, source, captured_at) {}"
)
FLOOR_INSERT_EVENT = "INSERT INTO bench_floor_outbox (topic, key, payload, created_at) {}"


Row = tuple[Any, ...]


class FloorStore(Protocol):
    """Where the floor writes: `write` inserts a lead and its event and commits, or answers
    False (nothing written) if the email is taken. Writes waiting together go in one
    transaction (`FloorGroups`), as the service's group commit writes them."""

    async def open(self) -> None: ...
    async def write(self, lead: Row, event: Row) -> bool: ...
    async def close(self) -> None: ...


class FloorGroups:
    """Group commit by hand: the writes waiting when a writer is free go in one transaction
    (`write_group`: for each lead, whether it went in); up to `writers` at once."""

    def __init__(
        self, write_group: Callable[[list[tuple[Row, Row]]], Awaitable[list[bool]]], writers: int
    ) -> None:
        self.write_group = write_group
        self.writers = writers
        self.running = 0
        self.waiting: deque[tuple[Row, Row, asyncio.Future[bool]]] = deque()

    async def write(self, lead: Row, event: Row) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((lead, event, future))
        if self.running < self.writers:
            self.running += 1
            asyncio.get_running_loop().create_task(self.drain())
        return await future

    async def drain(self) -> None:
        try:
            while self.waiting:
                group = [self.waiting.popleft() for _ in range(min(500, len(self.waiting)))]
                try:
                    answers = await self.write_group([(lead, event) for lead, event, _ in group])
                except Exception as error:
                    for *_, future in group:
                        future.set_exception(error)
                    continue
                for (*_, future), answer in zip(group, answers, strict=True):
                    future.set_result(answer)
        finally:
            self.running -= 1


class PostgresFloor:
    """asyncpg pool; per group BEGIN, the leads (ON CONFLICT DO NOTHING) and the events of
    those that went in, each as one array per column, COMMIT; two groups at once (the service's
    `GROUP_WRITERS_POSTGRES`)."""

    def __init__(self, url: str) -> None:
        self.url = asyncpg_dsn(url)
        self.pool: Any = None
        self.groups = FloorGroups(self._write_group, writers=GROUP_WRITERS_POSTGRES)
        self.lead_sql = FLOOR_INSERT_LEAD.format(
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::text[], $7::timestamptz[]) ON CONFLICT (email) DO NOTHING RETURNING id"
        )
        self.event_sql = FLOOR_INSERT_EVENT.format(
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])"
        )

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            self.url, min_size=FLOOR_POOL_SIZE, max_size=FLOOR_POOL_SIZE
        )
        async with self.pool.acquire() as connection:
            for statement in FLOOR_TABLES["postgres"]:
                await connection.execute(statement)

    async def write(self, lead: Row, event: Row) -> bool:
        return await self.groups.write(lead, event)

    async def _write_group(self, rows: list[tuple[Row, Row]]) -> list[bool]:
        async with self.pool.acquire() as connection, connection.transaction():
            leads = list(zip(*(lead for lead, _ in rows), strict=True))
            inserted = {row[0] for row in await connection.fetch(self.lead_sql, *leads)}
            events = [event for lead, event in rows if lead[0] in inserted]
            if events:
                await connection.execute(self.event_sql, *zip(*events, strict=True))
        return [lead[0] in inserted for lead, _ in rows]

    async def close(self) -> None:
        await self.pool.close()


class SqliteFloor:
    """One sqlite3 connection (WAL, synchronous=NORMAL), used only by one writer thread; per
    group BEGIN IMMEDIATE, each lead (ON CONFLICT DO NOTHING) and its event, COMMIT."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
        self.connection: sqlite3.Connection | None = None
        self.groups = FloorGroups(self._write_group, writers=1)
        self.lead_sql = FLOOR_INSERT_LEAD.format(
            f"VALUES ({', '.join('?' * 7)}) ON CONFLICT DO NOTHING"
        )
        self.event_sql = FLOOR_INSERT_EVENT.format("VALUES (?, ?, ?, ?)")

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.thread, self._connect)

    def _connect(self) -> None:
        connection = sqlite_writer(self.path)
        for statement in FLOOR_TABLES["sqlite"]:
            connection.execute(statement)
        self.connection = connection

    async def write(self, lead: Row, event: Row) -> bool:
        return await self.groups.write(lead, event)

    async def _write_group(self, rows: list[tuple[Row, Row]]) -> list[bool]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.thread, self._write, rows)

    def _write(self, rows: list[tuple[Row, Row]]) -> list[bool]:
        assert self.connection is not None
        connection = self.connection
        connection.execute("BEGIN IMMEDIATE")  # as the service begins its transactions
        answers = []
        try:
            for lead, event in rows:
                went_in = connection.execute(
                    self.lead_sql, (*lead[:6], lead[6].isoformat())
                ).rowcount
                if went_in:
                    connection.execute(self.event_sql, (*event[:3], event[3].isoformat()))
                answers.append(bool(went_in))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return answers

    async def close(self) -> None:
        if self.connection is not None:
            await asyncio.get_running_loop().run_in_executor(self.thread, self.connection.close)
        self.thread.shutdown()


def floor_rows(body: LeadCreate) -> tuple[Row, Row]:
    """The lead row of `body` and its outbox row: an envelope shaped as LeadCaptured's."""
    key, now = new_id(), datetime.now(UTC)
    data = body.model_dump(mode="json", exclude={"occurred_at"})
    payload = lead_captured_json(new_id(), key, data, now)
    lead = (key, body.email, body.name, body.company, body.title, body.source, now)
    return lead, (topic_of("marketing"), key, payload, now)


def floor_app(url: str) -> fastapi.FastAPI:
    """The floor's app on `url`: a postgresql+asyncpg:// URL or sqlite:///<file>."""
    store: FloorStore
    if url.startswith("sqlite:///"):
        store = SqliteFloor(url.removeprefix("sqlite:///"))
    else:
        store = PostgresFloor(url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: fastapi.FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/leads", status_code=201)
    async def create_lead(body: LeadCreate) -> LeadCreate:
        if not await store.write(*floor_rows(body)):
            raise fastapi.HTTPException(409, "a lead with this email exists")
        return body

    return app


def serve_floor(port: int, url: str) -> None:
    """Run the floor as BARE_APP runs the bare app (same uvicorn options)."""
    import uvicorn

    uvicorn.run(
        floor_app(url),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        proxy_headers=True,
        log_level="warning",
    )


def requests(port: int, token: str, prefix: str, count: int) -> list[bytes]:
    """`count` ready-made HTTP/1.1 requests, each a lead with its own email."""
    out = []
    for n in range(count):
        body = orjson.dumps(
            {
                "email": f"{prefix}-{n}@example.jp",
                "name": f"Lead {n}",
                "company": "Bench KK",
                "title": "CTO",
                "source": "ads",
            }
        )
        head = (
            f"POST /v1/leads HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _drive(port: int, batches: list[list[bytes]], clients: int) -> tuple[float, Counter[int]]:
    """Send each batch over `clients` connections; the seconds the last batch took, statuses."""
    statuses: Counter[int] = Counter()
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]

    async def worker(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, queue: Iterator[bytes]
    ) -> None:
        for request in queue:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            statuses[int(head[9:12])] += 1
            start = head.index(b"content-length:") + 15
            await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))

    elapsed = 0.0
    for batch in batches:
        statuses.clear()
        queue = iter(batch)
        started = time.perf_counter()
        await asyncio.gather(*(worker(r, w, queue) for r, w in connections))
        elapsed = time.perf_counter() - started
    for _, writer in connections:
        writer.close()
    return elapsed, statuses


def load(
    port: int, token: str, warmup: int, count: int, clients: int
) -> tuple[float, dict[int, int]]:
    """In the load process: warm up, then time `count` requests; (requests/s, statuses)."""
    import uvloop

    prefix = f"bench-{uuid.uuid4().hex[:12]}"
    batches = [requests(port, token, prefix + "w", warmup), requests(port, token, prefix, count)]
    elapsed, statuses = uvloop.run(_drive(port, batches, clients))
    return count / elapsed, dict(statuses)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


@contextlib.contextmanager
def app_server(code: str, *args: str) -> Iterator[int]:
    """`python -c code <port> *args` running and answering /healthz; yields its port."""
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen([sys.executable, "-c", code, str(port), *args], cwd=root)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        process.terminate()
        process.wait()


def measure(
    db: str, args: argparse.Namespace, pool: ProcessPoolExecutor
) -> tuple[float, float, float]:
    """Median requests/s of (bare, floor, service) on `db`."""
    token = mint_token(SECRET, subject="bench", scopes=["marketing:write"])
    rates: dict[str, list[float]] = {"bare": [], "floor": [], "service": []}
    with contextlib.ExitStack() as stack:
        env = {}
        if db == "postgres":
            floor_url = stack.enter_context(postgres_database())  # the service's, too
            env["BATON_MARKETING_DATABASE_URL"] = floor_url
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="baton-bench-floor-"))
            floor_url = f"sqlite:///{Path(tmp) / 'floor.db'}"
        supervisor = stack.enter_context(fleet("marketing", **env))
        ports = {
            "bare": stack.enter_context(app_server(BARE_APP)),
            "floor": stack.enter_context(app_server(FLOOR_APP, floor_url)),
            "service": supervisor.children[0].port,
        }
        for _ in range(args.rounds):
            for name, port in ports.items():
                rate, statuses = pool.submit(
                    load, port, token, args.warmup, args.requests, args.clients
                ).result()
                if set(statuses) != {201}:
                    raise RuntimeError(f"unexpected statuses from {name}: {statuses}")
                rates[name].append(rate)
        print(
            f"{db}: " + ", ".join(f"{k} {[round(r) for r in v]}" for k, v in rates.items()),
            "req/s",
            file=sys.stderr,
        )
    bare, floor, service = (statistics.median(rates[k]) for k in ("bare", "floor", "service"))
    return bare, floor, service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    dbs = chosen_databases(args)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        results = {db: measure(db, args, pool) for db in dbs}
    print(
        f"POST /v1/leads, {args.clients} connections, {args.requests} requests after "
        f"{args.warmup} warm-up, median of {args.rounds} rounds"
    )
    print(
        f"{'database':<10}{'bare req/s':>11}{'floor req/s':>12}{'floor ratio':>12}"
        f"{'service req/s':>15}{'ratio':>7}{'of floor':>9}  target"
    )
    for db, (bare, floor, service) in results.items():
        ratio, floor_ratio, target = service / bare, floor / bare, TARGETS[db]
        verdict = "ok" if ratio >= target else "MISSED"
        if floor_ratio < target:
            verdict += " (the floor misses it too)"
        print(
            f"{db:<10}{bare:>11.0f}{floor:>12.0f}{floor_ratio:>12.0%}{service:>15.0f}"
            f"{ratio:>7.0%}{service / floor:>9.0%}  >= {target:.0%}: {verdict}"
        )


if __name__ == "__main__":
    main()
