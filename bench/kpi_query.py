"""KPI query latency: `GET /v1/kpis?granularity=week` over a year (52 ISO weeks, every
department) from the real KPI service (`baton serve kpi`, one uvicorn worker) whose read model
holds N leads' worth of events (default 1,000,000), against a bare uvicorn + FastAPI endpoint
started the same way that returns a precomputed body of the same size, in the same run; the
single `daily_totals` aggregate query the report starts with is timed directly too (the floor of
the read model as it is). Targets: p95 <= 50 ms; the service's resident memory <= 300 MiB.

Publishing that many events through the broker would take hours, so the read model is seeded
directly, with the service's own write semantics: one fact row per lead and per opportunity,
and the daily totals those rows contribute, computed with `services.kpi.facts`
(`lead_contributions`, `opportunity_contributions`, as the handlers apply them), so the totals
are the real ones. The funnel, over the 52 weeks before this week: every lead captured (40
campaigns of 6 weeks, each on one channel, bring 60% of the leads), ~25% download content,
~30% become MQLs (first touch within 0.5-48 h for 90% of them, SLA breaches recorded), ~10%
SQLs (an opportunity each, 15% neglected first), ~3% won (amount, MRR, onboarding) and the rest
mostly lost; the customers then answer NPS, buy upsells, are at risk, churn or renew; campaign
costs are spread over their days. Nothing later than now is recorded. PostgreSQL is seeded with
COPY, then VACUUM ANALYZE (the state autovacuum keeps it in); SQLite with executemany.

Each database: W warm-up requests (the first one, "cold", works out every period: the service
keeps the periods' results until a day they read changes), then R sequential ones (stopping
early, at 5 at least, once `--budget-s` is spent), p50/p95/p99 in ms; the same with a `source=`
filter; then R requests each after the last day's revision was moved on, as the ingest does when
an event of today arrives ("today changed": the last week and the total are worked out again);
the process's resident memory after the requests (and its peak, VmHWM). The gauges' refresh
(which runs the same query for this week and month) is set to once an hour, so it runs only at
start-up.

    .venv/bin/python -m bench.kpi_query [--db sqlite|postgres|both] [--leads 1000000]
                                        [--requests 50] [--warmups 3] [--budget-s 120]
                                        [--source webinar]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import asyncpg
import httpx
import orjson
import uvloop
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from baton.broker import free_port
from bench.fleet import (
    SECRET,
    add_database_option,
    asyncpg_dsn,
    chosen_databases,
    database,
    fleet,
    percentile,
    rss_mb,
)
from services.kpi import repository
from services.kpi.app import SPEC as KPI
from services.kpi.facts import (
    Contributions,
    Key,
    Rules,
    lead_contributions,
    mrr_change,
    nps_contributions,
    opportunity_contributions,
    spread,
)
from services.kpi.models import (
    DailyTotal,
    DayRevision,
    LeadFact,
    LeadRow,
    OpportunityFact,
    OpportunityRow,
    fact_columns,
    fact_record,
    fact_values,
)
from services.kpi.periods import Granularity, bucket_start, day_start, local_day
from services.kpi.settings import Settings
from shared.auth import mint_token
from shared.db import create_engine, session_factory
from shared.events import LeadSource
from shared.migrations import upgrade

TARGET_P95_MS = 50.0
TARGET_RSS_MB = 300.0
WEEKS = 52
CHUNK = 50_000  # fact rows generated and written at a time
MIN_REQUESTS = 5
SQL_ROUNDS = 20
SOURCES: tuple[LeadSource, ...] = LeadSource.__args__  # type: ignore[attr-defined]
CHANNELS = ("content", "ads", "seminar", "webinar", "event")
CAMPAIGNS, CAMPAIGN_WEEKS, CAMPAIGN_SHARE = 40, 6, 0.6
H, D = timedelta(hours=1), timedelta(days=1)
BARE_APP = """
import sys, fastapi, uvicorn
from pathlib import Path
body = Path(sys.argv[2]).read_bytes()
app = fastapi.FastAPI()
@app.get("/v1/kpis")
def kpis() -> fastapi.Response:
    return fastapi.Response(body, media_type="application/json")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning")
"""


LEAD_COLUMNS, OPPORTUNITY_COLUMNS = fact_columns(LeadRow), fact_columns(OpportunityRow)
TOTAL_COLUMNS = ("day", "metric", "source", "campaign_id", "value")


class Campaign(NamedTuple):
    campaign_id: str
    channel: str
    first: date
    last: date


class Seeded(NamedTuple):
    leads: int
    opportunities: int
    totals: int
    seconds: float


class Journeys:
    """Leads' facts over `[start, end)` local days and what they add to the daily totals."""

    def __init__(
        self, rules: Rules, start: date, end: date, leads: int, now: datetime, seed: int
    ) -> None:
        self.rules, self.now, self.rng = rules, now, random.Random(seed)
        self.leads, self.made = leads, 0
        self.start, self.end = start, end
        self.first, self.span = day_start(start, rules.tz), (end - start).days * 86_400
        self.totals: Contributions = Counter()
        self.campaigns = self._campaigns()
        self.active: dict[date, list[Campaign]] = {}
        for campaign in self.campaigns:
            day = campaign.first
            while day <= campaign.last:
                self.active.setdefault(day, []).append(campaign)
                day += D

    def _campaigns(self) -> list[Campaign]:
        """Campaigns of six weeks on one channel each; their cost spread over their days."""
        out = []
        for _ in range(CAMPAIGNS):
            first = self.start + timedelta(days=self.rng.randrange((self.end - self.start).days))
            last = min(first + timedelta(weeks=CAMPAIGN_WEEKS) - D, self.end - D)
            campaign = Campaign(str(uuid.uuid4()), self.rng.choice(CHANNELS), first, last)
            out.append(campaign)
            amount = self.rng.randrange(50, 500) * 100_000
            for day, share in spread(amount, first, last):
                cost = Key("marketing_cost", day, campaign.channel, campaign.campaign_id)
                self.totals[cost] += share
        return out

    def _past(self, moment: datetime) -> datetime | None:
        return moment if moment <= self.now else None

    def _count(self, at: datetime, values: dict[str, int]) -> None:
        """A stand-alone event's values on its day, as `ReadModel.count` adds them."""
        day = local_day(at, self.rules.tz)
        for metric, value in values.items():
            self.totals[Key(metric, day)] += value

    def chunk(self, count: int) -> tuple[list[LeadRow], list[OpportunityRow]]:
        """`count` more leads and their opportunities; their contributions added to `totals`."""
        leads, opportunities = [], []
        for _ in range(count):
            lead, opportunity = self._journey()
            leads.append(lead)
            self.totals.update(lead_contributions(lead, self.rules))
            if opportunity is not None:
                opportunities.append(opportunity)
                self.totals.update(opportunity_contributions(opportunity, self.rules))
        return leads, opportunities

    def _journey(self) -> tuple[LeadRow, OpportunityRow | None]:
        rng, tz, past = self.rng, self.rules.tz, self._past
        # Leads come in time order, as the service writes them (rows lie in capture order).
        captured = self.first + timedelta(
            seconds=self.span * (self.made + rng.random()) / self.leads
        )
        self.made += 1
        source: str = rng.choice(SOURCES)
        campaign_id = ""
        active = self.active.get(local_day(captured, tz))
        if active and rng.random() < CAMPAIGN_SHARE:
            campaign = rng.choice(active)
            source, campaign_id = campaign.channel, campaign.campaign_id
        downloads: dict[str, int] = {}
        if rng.random() < 0.25:
            for _ in range(rng.randint(1, 2)):
                at = past(captured + rng.randrange(1, 120) * H)
                if at is not None:
                    day = local_day(at, tz).isoformat()
                    downloads[day] = downloads.get(day, 0) + 1
        mql = respond_by = touch = breached = sql = won = None
        renewed = risk = churned = None
        opportunity = None
        if rng.random() < 0.30:
            mql = past(captured + rng.uniform(1, 240) * H)
        if mql is not None:
            respond_by = mql + D
            if rng.random() < 0.9:
                touch = past(mql + rng.uniform(0.5, 48) * H)
            if touch is None or touch > respond_by:
                breached = past(respond_by + timedelta(minutes=5))
            if touch is not None and rng.random() < 0.38:
                sql = past(touch + rng.uniform(1, 10) * D)
        if sql is not None:
            opportunity = self._opportunity(str(uuid.uuid4()), source, campaign_id, sql)
            won = opportunity.won_at
            if won is not None and opportunity.onboarded_at is not None:
                renewed, risk, churned = self._customer(opportunity, won, opportunity.onboarded_at)
        lead = LeadRow(
            opportunity.lead_id if opportunity else str(uuid.uuid4()),
            source,
            campaign_id,
            captured,
            downloads,
            mql,
            respond_by,
            touch,
            breached,
            sql,
            won,
            renewed,
            risk,
            churned,
        )
        return lead, opportunity

    def _opportunity(
        self, lead_id: str, source: str, campaign_id: str, created: datetime
    ) -> OpportunityRow:
        """An SQL: accepted (perhaps neglected first), won (35%) or lost (55%), onboarded."""
        rng, past = self.rng, self._past
        neglected = past(created + 2 * D) if rng.random() < 0.15 else None
        accepted = past((neglected or created) + rng.uniform(1, 40) * H)
        closed = past(created + rng.uniform(5, 40) * D)
        outcome = rng.random()
        won = closed if outcome < 0.35 else None
        lost = closed if 0.35 <= outcome < 0.9 else None
        amount = rng.randrange(10, 500) * 100_000 if won else None
        onboarded = past(won + rng.uniform(5, 40) * D) if won else None
        return OpportunityRow(
            str(uuid.uuid4()),
            lead_id,
            source,
            campaign_id,
            created,
            accepted,
            neglected,
            won,
            amount,
            amount // 12 if amount else None,
            lost,
            onboarded,
        )

    def _customer(
        self, deal: OpportunityRow, won: datetime, onboarded: datetime
    ) -> tuple[datetime | None, datetime | None, datetime | None]:
        """NPS, upsell, churn risk and churn, or a renewal; (renewed, risk, churned) times."""
        rng, past, mrr = self.rng, self._past, deal.mrr or 0
        renewed = risk = churned = None
        if (answered := past(onboarded + D)) is not None:
            self.totals.update(
                nps_contributions(rng.randint(0, 10), local_day(answered, tz=self.rules.tz))
            )
        if rng.random() < 0.2 and (upsold := past(onboarded + 20 * D)) is not None:
            self._count(upsold, {"upsells": 1, "mrr_expansion": mrr // 5})
        if rng.random() < 0.15:
            risk = past(won + rng.uniform(30, 60) * D)
            if risk is not None:
                self._count(risk, {"churn_risks": 1, "mrr_at_risk": mrr})
                if rng.random() < 0.5:
                    churned = past(risk + rng.uniform(10, 30) * D)
                    if churned is not None:
                        self._count(churned, {"customers_churned": 1, "mrr_churned": mrr})
        elif rng.random() < 0.3:
            renewed = past(won + rng.uniform(60, 120) * D)
            if renewed is not None:
                self._count(renewed, {"renewals": 1})
                day = local_day(renewed, self.rules.tz)
                self.totals.update(mrr_change("mrr_expansion", "mrr_contraction", 10_000, day))
        return renewed, risk, churned


def _total_rows(totals: Contributions) -> list[tuple[date, str, str, str, int]]:
    return [(k.day, k.metric, k.source, k.campaign_id, v) for k, v in totals.items() if v]


async def _write_postgres(url: str, journeys: Journeys, leads: int) -> tuple[int, int]:
    """COPY the facts chunk by chunk, then the totals; VACUUM ANALYZE as autovacuum would."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    written = opportunities = 0
    try:
        while written < leads:
            rows, deals = journeys.chunk(min(CHUNK, leads - written))
            records = []
            for row in rows:
                record = fact_values(row)
                records.append((*record[:4], orjson.dumps(row.downloads).decode(), *record[5:]))
            await connection.copy_records_to_table(
                "lead_facts", records=records, columns=LEAD_COLUMNS
            )
            await connection.copy_records_to_table(
                "opportunity_facts",
                records=[fact_values(deal) for deal in deals],
                columns=OPPORTUNITY_COLUMNS,
            )
            written, opportunities = written + len(rows), opportunities + len(deals)
        await connection.copy_records_to_table(
            "daily_totals", records=_total_rows(journeys.totals), columns=TOTAL_COLUMNS
        )
        for table in ("lead_facts", "opportunity_facts", "daily_totals"):
            await connection.execute(f"VACUUM ANALYZE {table}")
    finally:
        await connection.close()
    return written, opportunities


async def _write_sqlite(engine: AsyncEngine, journeys: Journeys, leads: int) -> tuple[int, int]:
    """executemany the facts chunk by chunk (a transaction each), then the totals."""
    written = opportunities = 0
    while written < leads:
        rows, deals = journeys.chunk(min(CHUNK, leads - written))
        async with engine.begin() as connection:
            await connection.execute(insert(LeadFact), [fact_record(row) for row in rows])
            if deals:
                values = [fact_record(deal) for deal in deals]
                await connection.execute(insert(OpportunityFact), values)
        written, opportunities = written + len(rows), opportunities + len(deals)
    async with engine.begin() as connection:
        totals = _total_rows(journeys.totals)
        values = [dict(zip(TOTAL_COLUMNS, t, strict=True)) for t in totals]
        await connection.execute(insert(DailyTotal), values)
    return written, opportunities


async def seed(url: str, rules: Rules, start: date, end: date, leads: int, seed: int) -> Seeded:
    """Migrate the database at `url` and write `leads` leads' facts and their daily totals."""
    started = time.perf_counter()
    engine = create_engine(url)
    try:
        await upgrade(engine, "kpi", KPI.migrations)
        journeys = Journeys(rules, start, end, leads, datetime.now(UTC), seed)
        if engine.dialect.name == "postgresql":
            written, opportunities = await _write_postgres(url, journeys, leads)
        else:
            written, opportunities = await _write_sqlite(engine, journeys, leads)
        async with engine.begin() as connection:  # every day was written once
            days = sorted({key.day for key in journeys.totals})
            await connection.execute(
                insert(DayRevision), [{"day": day, "revision": 1} for day in days]
            )
    finally:
        await engine.dispose()
    totals = len(_total_rows(journeys.totals))
    return Seeded(written, opportunities, totals, time.perf_counter() - started)


async def time_sql(url: str, start: date, end: date, rounds: int) -> float:
    """Median seconds of the `daily_totals` aggregate over `[start, end)`, run directly."""
    engine = create_engine(url)
    try:
        times = []
        async with session_factory(engine)() as session:
            await repository.daily_totals(session, start, end, None, None)
            for _ in range(rounds):
                began = time.perf_counter()
                await repository.daily_totals(session, start, end, None, None)
                times.append(time.perf_counter() - began)
        return statistics.median(times)
    finally:
        await engine.dispose()


class Timed(NamedTuple):
    warmups: list[float]
    times: list[float]
    body: bytes


async def time_requests(
    url: str,
    params: dict[str, str],
    warmups: int,
    requests: int,
    budget_s: float,
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> Timed:
    """Seconds of each of `warmups`, then of `requests` sequential GETs (each after
    `before_each`, untimed); the last body."""
    token = mint_token(SECRET, subject="bench", scopes=["kpi:read"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=600) as client:
        body = b""
        warm: list[float] = []
        for _ in range(warmups):
            began = time.perf_counter()
            response = await client.get(url, params=params)
            response.raise_for_status()
            warm.append(time.perf_counter() - began)
            body = response.content
        times: list[float] = []
        deadline = time.perf_counter() + budget_s
        while len(times) < requests and (
            len(times) < MIN_REQUESTS or time.perf_counter() < deadline
        ):
            if before_each is not None:
                await before_each()
            began = time.perf_counter()
            response = await client.get(url, params=params)
            body = response.content
            times.append(time.perf_counter() - began)
            response.raise_for_status()
        return Timed(warm, times, body)


async def time_changed_requests(
    url: str, database_url: str, params: dict[str, str], day: date, requests: int, budget_s: float
) -> list[float]:
    """`time_requests`, the revision of `day` moved on (in its own transaction) before each."""
    engine = create_engine(database_url)

    async def touch() -> None:
        async with engine.begin() as connection:
            await connection.execute(
                update(DayRevision)
                .where(DayRevision.day == day)
                .values(revision=DayRevision.revision + 1)
            )

    try:
        return (await time_requests(url, params, 0, requests, budget_s, touch)).times
    finally:
        await engine.dispose()


@contextlib.contextmanager
def bare_server(body: Path) -> Iterator[str]:
    """A bare uvicorn + FastAPI process answering `GET /v1/kpis` with the bytes of `body`."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BARE_APP, str(port), str(body)], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/kpis", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1/kpis"
    finally:
        process.terminate()
        process.wait()


class Result(NamedTuple):
    seeded: Seeded
    cold: float
    kpis: list[float]
    filtered: list[float]
    changed: list[float]
    bare: list[float]
    sql_s: float
    rss: float
    peak: float
    body_bytes: int


def run(db: str, url: str, args: argparse.Namespace, tmp: Path) -> Result:
    """Seed the database at `url`, serve it with `baton serve kpi` and time the requests."""
    rules = Settings(database_url=url, jwt_secret=SECRET).rules()
    end = bucket_start(local_day(datetime.now(UTC), rules.tz), Granularity.week)
    start = end - timedelta(weeks=WEEKS)
    seeded = uvloop.run(seed(url, rules, start, end, args.leads, args.seed))
    print(
        f"{db}: seeded {seeded.leads:,} leads, {seeded.opportunities:,} opportunities, "
        f"{seeded.totals:,} daily totals in {seeded.seconds:.0f} s",
        file=sys.stderr,
    )
    params = {"granularity": "week", "from": start.isoformat(), "to": end.isoformat()}
    env = {"BATON_KPI_DATABASE_URL": url, "BATON_KPI_GAUGES_S": "3600"}
    with fleet("kpi", **env) as supervisor:
        (child,) = supervisor.children
        endpoint = f"{child.url}/v1/kpis"
        timed = uvloop.run(
            time_requests(endpoint, params, args.warmups, args.requests, args.budget_s)
        )
        body = timed.body
        report = orjson.loads(body)
        captured = report["total"]["kpis"]["marketing"]["leads_captured"]
        if captured != seeded.leads:
            raise RuntimeError(f"the report counts {captured} leads captured of {seeded.leads}")
        filtered_params = {**params, "source": args.source}
        filtered = uvloop.run(
            time_requests(endpoint, filtered_params, 1, args.requests, args.budget_s / 2)
        ).times
        today = end - timedelta(days=1)
        changed = uvloop.run(
            time_changed_requests(endpoint, url, params, today, args.requests, args.budget_s)
        )
        rss, peak = rss_mb(child.process.pid), rss_mb(child.process.pid, "VmHWM")
    sql_s = uvloop.run(time_sql(url, start, end, SQL_ROUNDS))
    saved = tmp / f"kpis-{db}.json"
    saved.write_bytes(body)
    with bare_server(saved) as bare_url:
        bare = uvloop.run(time_requests(bare_url, {}, args.warmups, args.requests, 60)).times
    cold = timed.warmups[0] if timed.warmups else float("nan")
    return Result(seeded, cold, timed.times, filtered, changed, bare, sql_s, rss, peak, len(body))


def ms(values: list[float], pct: float) -> float:
    return percentile(values, pct) * 1000


def report(results: dict[str, Result], args: argparse.Namespace) -> None:
    leads = next(iter(results.values())).seeded.leads
    print(
        f"KPI query: GET /v1/kpis?granularity=week over {WEEKS} weeks, {leads:,} leads; "
        "ms over sequential requests"
    )
    print(
        f"{'database':<10}{'request':<17}{'n':>4}{'p50':>9}{'p95':>9}{'p99':>9}"
        f"{'p50/bare':>10}  target"
    )
    for db, r in results.items():
        bare50 = ms(r.bare, 50)
        print(f"{db:<10}{'all, cold':<17}{1:>4}{r.cold * 1000:>9.1f}")
        series = (
            ("all", r.kpis),
            (f"source={args.source}", r.filtered),
            ("all, today chgd", r.changed),
        )
        for name, values in series:
            p95 = ms(values, 95)
            verdict = "ok" if p95 <= TARGET_P95_MS else "MISSED"
            print(
                f"{db:<10}{name:<17}{len(values):>4}{ms(values, 50):>9.1f}{p95:>9.1f}"
                f"{ms(values, 99):>9.1f}{ms(values, 50) / bare50:>9.1f}x  "
                f"p95 <= {TARGET_P95_MS:.0f}: {verdict}"
            )
        print(
            f"{db:<10}{'bare FastAPI':<17}{len(r.bare):>4}{bare50:>9.1f}{ms(r.bare, 95):>9.1f}"
            f"{ms(r.bare, 99):>9.1f}  (same {r.body_bytes:,}-byte body)"
        )
        verdict = "ok" if r.peak <= TARGET_RSS_MB else "MISSED"
        print(
            f"{db:<10}daily_totals SQL alone: {r.sql_s * 1000:.1f} ms (median of {SQL_ROUNDS}); "
            f"RSS after {r.rss:.0f} MiB, peak {r.peak:.0f} MiB "
            f"(<= {TARGET_RSS_MB:.0f}: {verdict}); {r.seeded.totals:,} daily_totals rows"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_option(parser)
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=120.0, help="per series of requests")
    parser.add_argument("--source", choices=SOURCES, default="webinar")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as name:
        for db in chosen_databases(args):
            with database(db, Path(name), "kpi") as url:
                results[db] = run(db, url, args, Path(name))
    report(results, args)


if __name__ == "__main__":
    main()
