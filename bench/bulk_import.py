"""Bulk import throughput: 100,000 leads as one CSV (with a header) through
`POST /v1/leads/import` on the marketing service as `baton serve` runs it (the relay publishing to
the embedded broker), against a raw `executemany` of the same rows, in one transaction, into an
identical scratch table of the same database (asyncpg `Connection.executemany` on PostgreSQL,
sqlite3 `executemany` on SQLite; `--copy` adds asyncpg `copy_records_to_table` for reference).
Leads/s, median over rounds. Each round imports new emails and the scratch table gets as many
rows, so both tables grow alike (the floor and COPY fill tables of their own); the relay's
backlog is drained before the raw insert and the floor run.
Targets: >= 25% of raw; >= 5,000 leads/s on PostgreSQL.

The floor, in the same rounds, is the least an import with the same guarantees must do, timed
from the same CSV bytes, in the benchmark's process, with the raw driver: read and validate every
row as the service does (`services.marketing.importer.parse`: csv and LeadCreate), score it, make
its lead row and its LeadCaptured event (the envelope as JSON, by hand), and insert the leads and
their outbox rows into copies of `leads` and `outbox` (same columns and indexes) in one
transaction. No HTTP, no ORM, nothing published; its ratio to raw is the
ceiling of such an import on this machine and database.

    .venv/bin/python -m bench.bulk_import [--db sqlite|postgres|both] [--leads 100000]
                                          [--rounds 3] [--copy]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import sqlite3
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.fleet import (
    SECRET,
    add_database_option,
    asyncpg_dsn,
    chosen_databases,
    copy_tables,
    fleet,
    lead_captured_json,
    postgres_database,
    sqlite_path,
    sqlite_writer,
)
from services.marketing import domain, importer
from services.marketing.captures import EVENT_COLUMNS, LEAD_COLUMNS
from shared.auth import mint_token
from shared.events.catalog import LeadSource
from shared.ids import new_ids
from shared.outbox import lane_of
from shared.settings import ServiceSettings, topic_of

RATIO_TARGET, PG_RATE_TARGET = 0.25, 5_000.0
TOPIC, OUTBOX_LANES = topic_of("marketing"), ServiceSettings.model_fields["outbox_lanes"].default
TITLES = ("CTO", "Head of Sales", "Engineer", "")
SOURCES: tuple[str, ...] = LeadSource.__args__  # type: ignore[attr-defined]


def csv_file(prefix: str, count: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("email", "name", "company", "title", "source"))
    for n in range(count):
        writer.writerow(
            (
                f"{prefix}-{n}@example.jp",
                f"Lead {n}",
                f"Company {n % 500} KK",
                TITLES[n % 4],
                SOURCES[n % len(SOURCES)],
            )
        )
    return out.getvalue().encode()


def raw_rows(prefix: str, count: int) -> list[tuple[Any, ...]]:
    """The rows the import makes of the same file (other ids and emails)."""
    model, now = domain.ScoringModel(), datetime.now(UTC)
    rows = []
    for n, lead_id in enumerate(new_ids(count)):
        title, company = TITLES[n % 4] or None, f"Company {n % 500} KK"
        rows.append(
            (
                lead_id,
                f"{prefix}-{n}@example.jp",
                f"Lead {n}",
                company,
                title,
                SOURCES[n % len(SOURCES)],
                None,
                "new",
                now,
                domain.score(model, title, company, ()).total,
                0,
                0,
            )
        )
    return rows


class Raw:
    """The baseline: a scratch copy of `leads` in the service's database, filled directly."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgresql")
        self.service_url = url
        self.url = asyncpg_dsn(url)
        self.path = sqlite_path(url)

    def run(self, statement: str) -> Any:
        """Execute one statement; the first value of the result."""
        if self.postgres:
            return asyncio.run(self._pg(lambda c: c.fetchval(statement)))
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as connection:
            row = connection.execute(statement).fetchone()
            return row[0] if row else None

    async def _pg(self, action: Any) -> Any:
        connection = await asyncpg.connect(self.url)
        try:
            return await action(connection)
        finally:
            await connection.close()

    def create_table(self) -> None:
        """The scratch tables: leads_raw; leads_floor and outbox_floor; leads_copy (COPY)."""
        copies = [("leads", "leads_raw"), ("leads", "leads_floor"), ("outbox", "outbox_floor")]
        if self.postgres:  # leads_copy: for COPY, so that leads_raw grows as leads does
            copies.append(("leads", "leads_copy"))
        asyncio.run(copy_tables(self.service_url, copies))

    def pending_events(self) -> int:
        return int(self.run("SELECT count(*) FROM outbox WHERE published_at IS NULL"))

    def insert(self, rows: list[tuple[Any, ...]], copy: bool = False) -> float:
        """Seconds to insert `rows` in one transaction."""
        if self.postgres:
            return float(asyncio.run(self._pg(lambda c: self._pg_insert(c, rows, copy))))
        values = [(*r[:8], _sqlite_time(r[8]), *r[9:]) for r in rows]
        names, marks = ", ".join(LEAD_COLUMNS), ", ".join("?" * len(LEAD_COLUMNS))
        statement = f"INSERT INTO leads_raw ({names}) VALUES ({marks})"
        with contextlib.closing(sqlite_writer(self.path)) as c:
            started = time.perf_counter()
            c.execute("BEGIN IMMEDIATE")
            c.executemany(statement, values)
            c.execute("COMMIT")
            return time.perf_counter() - started

    def floor(self, body: bytes) -> float:
        """Seconds the floor takes from the CSV bytes to its leads and outbox rows committed."""
        started = time.perf_counter()
        leads, events = floor_rows(body)
        lead_sql = f"INSERT INTO leads_floor ({', '.join(LEAD_COLUMNS)}) VALUES ({{}})"
        event_sql = f"INSERT INTO outbox_floor ({', '.join(EVENT_COLUMNS)}) VALUES ({{}})"
        if self.postgres:

            async def insert(connection: Any) -> None:
                async with connection.transaction():
                    await connection.executemany(lead_sql.format(_pg_params(LEAD_COLUMNS)), leads)
                    await connection.executemany(
                        event_sql.format(_pg_params(EVENT_COLUMNS)), events
                    )

            asyncio.run(self._pg(insert))
        else:
            with contextlib.closing(sqlite_writer(self.path)) as connection:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    lead_sql.format(", ".join("?" * 12)),
                    [(*r[:8], _sqlite_time(r[8]), *r[9:]) for r in leads],
                )
                connection.executemany(
                    event_sql.format(", ".join("?" * 8)),
                    [(*r[:6], _sqlite_time(r[6]), _sqlite_time(r[7])) for r in events],
                )
                connection.execute("COMMIT")
        return time.perf_counter() - started

    @staticmethod
    async def _pg_insert(connection: Any, rows: list[tuple[Any, ...]], copy: bool) -> float:
        statement = (
            f"INSERT INTO leads_raw ({', '.join(LEAD_COLUMNS)}) VALUES ({_pg_params(LEAD_COLUMNS)})"
        )
        started = time.perf_counter()
        async with connection.transaction():
            if copy:
                await connection.copy_records_to_table(
                    "leads_copy", records=rows, columns=LEAD_COLUMNS
                )
            else:
                await connection.executemany(statement, rows)
        return time.perf_counter() - started


def _pg_params(columns: tuple[str, ...]) -> str:
    """PostgreSQL's placeholders for a row of `columns`: `$1, $2, ...`."""
    return ", ".join(f"${n}" for n in range(1, len(columns) + 1))


def _sqlite_time(moment: datetime) -> str:
    """A UTC time as the services store it in SQLite."""
    return moment.replace(tzinfo=None).isoformat(" ")


def floor_rows(body: bytes) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The floor's work before its insert: every row of the CSV read, validated and scored, and
    its lead row and outbox row (LeadCaptured as JSON) made."""
    parsed = importer.parse(body, "text/csv")
    model, now = domain.ScoringModel(), datetime.now(UTC)
    leads, events = [], []
    ids = zip(new_ids(len(parsed.rows)), new_ids(len(parsed.rows)), strict=True)
    for (_, lead), (lead_id, event_id) in zip(parsed.rows, ids, strict=True):
        campaign_id = str(lead.campaign_id) if lead.campaign_id else None
        data = {
            "email": lead.email,
            "name": lead.name,
            "company": lead.company,
            "title": lead.title,
            "source": lead.source,
            "campaign_id": campaign_id,
        }
        score = domain.score(model, lead.title, lead.company, ()).total
        leads.append((lead_id, *data.values(), "new", now, score, 0, 0))
        payload = lead_captured_json(event_id, lead_id, data, now)
        lane = lane_of(lead_id, OUTBOX_LANES)
        events.append((event_id, "baton.LeadCaptured.v1", TOPIC, lead_id, lane, payload, now, now))
    return leads, events


def wait_drained(raw: Raw, timeout: float = 900) -> float:
    """Seconds until the relay has published every outbox row."""
    started = time.perf_counter()
    while raw.pending_events():
        if time.perf_counter() - started > timeout:
            raise RuntimeError("the outbox did not drain")
        time.sleep(0.5)
    return time.perf_counter() - started


def measure(db: str, args: argparse.Namespace) -> dict[str, float]:
    """Median leads/s of the import, the raw executemany, the floor (and COPY), and the relay's
    catch-up in seconds."""
    token = mint_token(SECRET, subject="bench", scopes=["marketing:write"])
    samples: dict[str, list[float]] = {k: [] for k in ("import", "raw", "floor", "copy", "drain")}
    with contextlib.ExitStack() as stack:
        env = {}
        if db == "postgres":
            env["BATON_MARKETING_DATABASE_URL"] = stack.enter_context(postgres_database())
        supervisor = stack.enter_context(fleet("marketing", **env))
        data_dir = Path(supervisor._env["BATON_DATA_DIR"])
        sqlite_url = f"sqlite+aiosqlite:///{data_dir.resolve()}/marketing.db"
        raw = Raw(env.get("BATON_MARKETING_DATABASE_URL", sqlite_url))
        raw.create_table()
        url = f"{supervisor.children[0].url}/v1/leads/import"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
        for round_ in range(args.rounds):
            prefix = f"bulk-{round_}-{uuid.uuid4().hex[:8]}"
            body = csv_file(prefix, args.leads)
            started = time.perf_counter()
            response = httpx.post(url, content=body, headers=headers, timeout=3600)
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            if response.json()["created"] != args.leads:
                raise RuntimeError(f"import: {response.text[:500]}")
            samples["import"].append(args.leads / elapsed)
            samples["drain"].append(wait_drained(raw))
            samples["raw"].append(args.leads / raw.insert(raw_rows(prefix + "r", args.leads)))
            samples["floor"].append(args.leads / raw.floor(csv_file(prefix + "f", args.leads)))
            if args.copy and raw.postgres:
                copied = raw.insert(raw_rows(prefix + "c", args.leads), copy=True)
                samples["copy"].append(args.leads / copied)
            print(
                f"{db} round {round_ + 1}: import {samples['import'][-1]:.0f}, "
                f"raw {samples['raw'][-1]:.0f}, floor {samples['floor'][-1]:.0f} leads/s",
                file=sys.stderr,
            )
    return {k: statistics.median(v) for k, v in samples.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copy", action="store_true", help="also time COPY (PostgreSQL)")
    args = parser.parse_args()
    dbs = chosen_databases(args)
    results = {db: measure(db, args) for db in dbs}
    print(f"POST /v1/leads/import, {args.leads} leads (CSV), median of {args.rounds} rounds")
    print(f"{'database':<10}{'import/s':>10}{'raw/s':>10}{'ratio':>7}{'relay s':>9}  target")
    for db, r in results.items():
        ratio = r["import"] / r["raw"]
        ok = ratio >= RATIO_TARGET and (db != "postgres" or r["import"] >= PG_RATE_TARGET)
        target = ">= 25%" + (", >= 5,000/s" if db == "postgres" else "")
        print(
            f"{db:<10}{r['import']:>10.0f}{r['raw']:>10.0f}{ratio:>6.0%}{r['drain']:>9.1f}  "
            f"{target}: {'ok' if ok else 'MISSED'}"
        )
        print(f"{'':<10}floor: {r['floor']:.0f} leads/s, {r['floor'] / r['raw']:.0%} of raw")
        if "copy" in r:
            print(f"{'':<10}COPY (copy_records_to_table): {r['copy']:.0f} leads/s")


if __name__ == "__main__":
    main()
