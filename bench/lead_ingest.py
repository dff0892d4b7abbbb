"""Lead ingest throughput: `POST /v1/leads` (bearer auth, validation, lead + outbox row in one
transaction) on the marketing service as `baton serve` runs it (one uvicorn worker, the relay
publishing to the embedded broker), against a bare uvicorn + FastAPI process started with the
same uvicorn options whose endpoint validates the same body (LeadCreate) and writes nothing.
The load comes from a separate process: 32 keep-alive connections, each one request at a time,
every lead a new email. Requests/s, median over rounds (bare and service rounds alternate).
Targets: >= 50% of bare on PostgreSQL, >= 40% on SQLite.

    .venv/bin/python -m bench.lead_ingest [--db sqlite|postgres|both] [--requests 5000]
                                           [--warmup 1000] [--rounds 5] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import httpx
import orjson

from baton.broker import free_port
from bench.fleet import SECRET, add_database_option, chosen_databases, fleet, postgres_database
from shared.auth import mint_token

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
def bare_server() -> Iterator[int]:
    port = free_port()
    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)], cwd=root)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        process.terminate()
        process.wait()


def measure(db: str, args: argparse.Namespace, pool: ProcessPoolExecutor) -> tuple[float, float]:
    """Median requests/s of (bare, service) on `db`."""
    token = mint_token(SECRET, subject="bench", scopes=["marketing:write"])
    bare_rates: list[float] = []
    service_rates: list[float] = []
    with contextlib.ExitStack() as stack:
        env = {}
        if db == "postgres":
            env["BATON_MARKETING_DATABASE_URL"] = stack.enter_context(postgres_database())
        supervisor = stack.enter_context(fleet("marketing", **env))
        service_port = supervisor.children[0].port
        bare_port = stack.enter_context(bare_server())
        for _ in range(args.rounds):
            for port, rates, expect in (
                (bare_port, bare_rates, 201),
                (service_port, service_rates, 201),
            ):
                rate, statuses = pool.submit(
                    load, port, token, args.warmup, args.requests, args.clients
                ).result()
                if set(statuses) != {expect}:
                    raise RuntimeError(f"unexpected statuses on port {port}: {statuses}")
                rates.append(rate)
        print(
            f"{db}: bare {[round(r) for r in bare_rates]}, "
            f"service {[round(r) for r in service_rates]} req/s",
            file=sys.stderr,
        )
    return statistics.median(bare_rates), statistics.median(service_rates)


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
    print(f"{'database':<10}{'bare req/s':>11}{'service req/s':>15}{'ratio':>8}  target")
    for db, (bare, service) in results.items():
        ratio = service / bare
        verdict = "ok" if ratio >= TARGETS[db] else "MISSED"
        print(
            f"{db:<10}{bare:>11.0f}{service:>15.0f}{ratio:>7.0%}  >= {TARGETS[db]:.0%}: {verdict}"
        )


if __name__ == "__main__":
    main()
