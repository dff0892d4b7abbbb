"""The whole relay, as `baton up` runs it: the broker and five `baton serve` processes.

A deterministic week goes through the departments' HTTP APIs only (backdated with `occurred_at`),
Inside Sales is stopped and restarted in the middle, and the KPI service must then report exactly
the numbers worked out here; after a restart, and after `baton kpi rebuild`, the same numbers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from baton.broker import EmbeddedBroker, free_ports
from shared.settings import SERVICES
from tests.helpers import TEST_SECRET, token

JST = ZoneInfo("Asia/Tokyo")
MONDAY = date.fromisocalendar(2026, 40, 1)
WEEK = {"from": MONDAY.isoformat(), "to": (MONDAY + timedelta(days=7)).isoformat()}
ADMIN = {"Authorization": f"Bearer {token('admin')}"}
GRACE_S = 8  # hand-offs younger than this are left alone by the SLA sweeps


def at(day: int, hour: float) -> str:
    """Day `day` of the week (0 = Monday) at `hour`, Tokyo time, as ISO 8601."""
    moment = datetime.combine(MONDAY, datetime.min.time(), JST) + timedelta(days=day, hours=hour)
    return moment.isoformat()


class Fleet:
    """The five services as separate processes, each started with `baton serve`."""

    def __init__(self, data_dir: Path, bootstrap: str) -> None:
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "BATON_DATA_DIR": str(data_dir),
            "BATON_KAFKA_BOOTSTRAP": bootstrap,
            "BATON_KAFKA_IDEMPOTENCE": "false",
            "BATON_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "BATON_JWT_SECRET": TEST_SECRET,
            "BATON_SWEEP_INTERVAL_S": "1",
            "BATON_SWEEP_GRACE_S": str(GRACE_S),
            "BATON_LOG_FORMAT": "console",
            **{f"BATON_{s.upper()}_PORT": str(p) for s, p in self.ports.items()},
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, *services: str) -> None:
        for service in services or SERVICES:
            with open(self.logs / f"{service}.log", "ab") as log:
                self.processes[service] = subprocess.Popen(
                    [sys.executable, "-m", "baton", "serve", service],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                )
        self.wait_ready(*(services or SERVICES))

    def wait_ready(self, *services: str) -> None:
        pending, deadline = set(services), time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                assert self.processes[service].poll() is None, self.log(service)
                try:
                    if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                        pending.discard(service)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
        assert not pending, f"not ready: {pending}"

    def stop(self, *services: str) -> None:
        for service in services or list(self.processes):
            process = self.processes.pop(service)
            process.send_signal(signal.SIGTERM)
            # uvicorn shuts down cleanly, then re-raises the signal: -SIGTERM is a clean stop
            assert process.wait(timeout=30) in (0, -signal.SIGTERM), self.log(service)
            assert "Application shutdown complete" in self.log(service)

    def log(self, service: str) -> str:
        return (self.logs / f"{service}.log").read_text(errors="replace")[-4000:]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with EmbeddedBroker(log_file=tmp_path / "broker.log") as broker:
        topics = subprocess.run(
            [sys.executable, "-m", "baton", "topics"],
            env={
                **os.environ,
                "BATON_KAFKA_BOOTSTRAP": broker.bootstrap,
                "BATON_DATA_DIR": str(tmp_path),
            },
            capture_output=True,
            timeout=60,
        )
        assert topics.returncode == 0, topics.stderr
        running = Fleet(tmp_path / "var", broker.bootstrap)
        try:
            running.start()
            yield running
        finally:
            for process in running.processes.values():
                process.kill()
                process.wait()


def waiting_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := check()) is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


class Client:
    """The departments' public APIs, with an admin token."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.http = httpx.Client(headers=ADMIN, timeout=30)

    def call(
        self,
        method: str,
        service: str,
        path: str,
        body: Any = None,
        expect: int = 200,
        **params: Any,
    ) -> Any:
        response = self.http.request(
            method, self.fleet.url(service) + path, json=body, params=params or None
        )
        assert response.status_code == expect, (service, path, response.text)
        return response.json()

    def found(self, service: str, path: str, **params: Any) -> Any:
        """GET `path` once it answers 200 (the hand-off has arrived)."""

        def get() -> Any:
            response = self.http.get(self.fleet.url(service) + path, params=params or None)
            return response.json() if response.status_code == 200 else None

        return waiting_for(get, f"{service} {path}")


def expected_kpis() -> dict[str, Any]:
    """The week worked out by hand: 8 leads (6 from the webinar campaign), 7 MQLs, 6 of them
    touched 2 h after the hand-off, 3 SQLs (one neglected), one win, one loss."""
    r = lambda value: round(value, 6)  # noqa: E731
    return {
        "marketing": {
            "leads_captured": 8,
            "mql_count": 7,
            "lead_to_mql_rate": 0.875,
            "marketing_cost": 400_000,
            "cost_per_lead": 50_000.0,
            "cost_per_mql": r(400_000 / 7),
            "content_downloads": 0,
        },
        "inside_sales": {
            "mqls_received": 7,
            "contact_rate": r(6 / 7),
            "sql_rate": r(3 / 7),
            "lead_response_time": {"median_hours": 2.0, "p90_hours": 2.0},
            "handling_rate": r(6 / 7),
            "sla_breaches": 1,
        },
        "field_sales": {
            "opportunity_count": 3,
            "deals_won": 1,
            "deals_lost": 1,
            "win_rate": 0.5,
            "revenue_won": 1_200_000,
            "neglect_rate": r(1 / 3),
            "avg_deal_size": 1_200_000.0,
            "sales_cycle_days": 2.75,
        },
        "customer_success": {
            "customers_at_start": 0,
            "mrr_at_start": 0,
            "customers_churned": 0,
            "logo_churn_rate": None,
            "revenue_churn_rate": None,
            "nps": 100.0,
            "nps_responses": 1,
            "upsell_count": 1,
            "expansion_mrr": 20_000,
            "nrr": None,
            "ltv": None,
            "churn_risks": 0,
        },
        "shared": {
            "overall_win_rate": r(1 / 3),
            "ltv": None,
            "lead_to_customer_rate": 0.125,
            "cac": 400_000.0,
            "ltv_to_cac": None,
            "funnel_velocity_days": {
                "lead_to_mql": 0.125,
                "mql_to_sql": 0.1667,
                "sql_to_won": 2.75,
            },
            "sla_compliance": {"mql": r(6 / 7), "sql": r(2 / 3), "deal": 1.0},
        },
    }


def week_kpis(api: Client) -> dict[str, Any]:
    body = api.call("GET", "kpi", "/v1/kpis", granularity="week", **WEEK)
    return dict(body["total"]["kpis"])


def settled_kpis(api: Client, expected: dict[str, Any]) -> dict[str, Any]:
    """The week's KPIs once they stop moving towards `expected` (or the last seen, to compare)."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        last = week_kpis(api)
        return last if last == expected else None

    try:
        return dict(waiting_for(check, "the KPIs", timeout=90))
    except AssertionError:
        return last


def test_a_week_of_the_relay_gives_exactly_the_kpis_worked_out(fleet: Fleet) -> None:
    api = Client(fleet)
    campaign = api.call(
        "POST",
        "marketing",
        "/v1/campaigns",
        {"name": "Autumn webinar", "channel": "webinar"},
        expect=201,
    )
    api.call(
        "POST",
        "marketing",
        f"/v1/campaigns/{campaign['id']}/costs",
        {
            "amount": 400_000,
            "currency": "JPY",
            "period_start": WEEK["from"],
            "period_end": (MONDAY + timedelta(days=6)).isoformat(),
        },
        expect=201,
    )
    rep = api.call(
        "POST",
        "inside_sales",
        "/v1/reps",
        {"name": "Aoi Sato", "email": "aoi@example.jp"},
        expect=201,
    )
    owner = "0b8f5a3e-1111-4c2d-9e6f-000000000001"

    leads: dict[int, str] = {}
    for n in range(1, 9):
        captured = n - 1  # lead n is captured on Monday at 09:00 + (n - 1) h
        body = {
            "email": f"buyer{n}@kansai-machinery.example.jp",
            "name": f"Buyer {n}",
            "company": f"Kansai Machinery {n}",
            "title": "CTO",
            "source": "webinar" if n <= 6 else "seo",
            "campaign_id": campaign["id"] if n <= 6 else None,
            "occurred_at": at(0, 9 + captured),
        }
        leads[n] = api.call("POST", "marketing", "/v1/leads", body, expect=201)["id"]

    def engage(n: int) -> None:
        """Three activities, 1, 2 and 3 h after capture: the third crosses the MQL line."""
        kinds = (
            ("demo_request", "webinar_attended", "pricing_page_view") if n != 7 else ("page_view",)
        )
        for hour, kind in enumerate(kinds, start=1):
            api.call(
                "POST",
                "marketing",
                f"/v1/leads/{leads[n]}/activities",
                {"type": kind, "occurred_at": at(0, 9 + (n - 1) + hour)},
                expect=201,
            )

    def mql_hour(n: int) -> float:
        return 9 + (n - 1) + 3

    def touch(n: int) -> None:
        api.found("inside_sales", f"/v1/leads/{leads[n]}")
        api.call(
            "POST",
            "inside_sales",
            f"/v1/leads/{leads[n]}/touches",
            {
                "channel": "call",
                "outcome": "connected",
                "rep_id": rep["id"],
                "occurred_at": at(0, mql_hour(n) + 2),
            },
            expect=201,
        )

    for n in (1, 2, 3, 4):
        engage(n)
        touch(n)
    # Inside Sales goes away; Marketing keeps handing over; it catches up when it is back.
    fleet.stop("inside_sales")
    for n in (5, 6, 7, 8):
        engage(n)
    fleet.start("inside_sales")
    for n in (5, 8):
        touch(n)
    api.found("inside_sales", f"/v1/leads/{leads[6]}")  # arrived, never touched: breached

    opportunities = {}
    for n in (1, 2, 3):
        sql = {
            "need": "automate the plant's reporting",
            "decision_maker": "CFO",
            "estimated_amount": 1_000_000,
            "occurred_at": at(0, mql_hour(n) + 4),
        }
        opportunities[n] = api.call(
            "POST", "inside_sales", f"/v1/leads/{leads[n]}/qualify", sql, expect=201
        )["opportunity_id"]
    api.call(
        "POST",
        "inside_sales",
        f"/v1/leads/{leads[4]}/recycle",
        {"reason": "timing", "occurred_at": at(0, mql_hour(4) + 5)},
    )
    api.call(
        "POST",
        "inside_sales",
        f"/v1/leads/{leads[5]}/disqualify",
        {"reason": "no fit", "occurred_at": at(0, mql_hour(5) + 5)},
    )

    for n in (1, 2):  # accepted an hour after the hand-off; the third SQL is neglected
        api.found("field_sales", f"/v1/opportunities/{opportunities[n]}")
        api.call(
            "POST",
            "field_sales",
            f"/v1/opportunities/{opportunities[n]}/accept",
            {"owner_id": owner, "occurred_at": at(0, mql_hour(n) + 5)},
        )
    api.found("field_sales", f"/v1/opportunities/{opportunities[3]}")
    won = f"/v1/opportunities/{opportunities[1]}"
    api.call("POST", "field_sales", f"{won}/stage", {"stage": "proposal", "occurred_at": at(1, 10)})
    api.call(
        "POST",
        "field_sales",
        f"{won}/win",
        {
            "amount": 1_200_000,
            "mrr": 100_000,
            "term_months": 12,
            "contract_start": (MONDAY + timedelta(days=3)).isoformat(),
            "occurred_at": at(3, 10),
        },
    )
    api.call(
        "POST",
        "field_sales",
        f"/v1/opportunities/{opportunities[2]}/lose",
        {"reason": "price", "occurred_at": at(4, 10)},
    )

    def account() -> Any:
        items = api.call("GET", "customer_success", "/v1/accounts", owner_id=owner)["items"]
        return items[0] if items else None

    account_id = waiting_for(account, "the account")["id"]
    for step in ("kickoff", "admin_setup", "data_import", "training", "first_value"):
        api.call(
            "POST",
            "customer_success",
            f"/v1/accounts/{account_id}/onboarding/{step}",
            {"occurred_at": at(4, 15)},
        )
    api.call(
        "POST",
        "customer_success",
        f"/v1/accounts/{account_id}/nps",
        {"score": 9, "occurred_at": at(5, 10)},
        expect=201,
    )
    api.call(
        "POST",
        "customer_success",
        f"/v1/accounts/{account_id}/upsells",
        {"mrr_delta": 20_000, "product": "Analytics", "occurred_at": at(5, 11)},
        expect=201,
    )

    expected = expected_kpis()
    assert settled_kpis(api, expected) == expected
    # Nothing lost or counted twice across the restart: every MQL reached Inside Sales once.
    for n in (1, 2, 3, 4, 5, 6, 8):
        assert api.call("GET", "inside_sales", f"/v1/leads/{leads[n]}")["lead_id"] == leads[n]

    funnel = api.call("GET", "kpi", "/v1/funnel", **WEEK)["stages"]
    assert [(s["stage"], s["count"]) for s in funnel] == [
        ("lead", 8),
        ("mql", 7),
        ("sql", 3),
        ("won", 1),
        ("retained", 1),
    ]
    sla = {
        h["handoff"]: h for h in api.call("GET", "kpi", "/v1/sla-compliance", **WEEK)["handoffs"]
    }
    assert (sla["mql"]["accepted_in_sla"], sla["mql"]["breached"]) == (6, 1)
    assert sla["mql"]["rejected"]["recycled"]["reasons"] == [{"reason": "timing", "count": 1}]
    assert (sla["sql"]["accepted_in_sla"], sla["sql"]["breached"]) == (2, 1)

    # A restarted KPI service keeps its numbers; a rebuild computes them again from the topics.
    fleet.stop("kpi")
    fleet.start("kpi")
    assert week_kpis(api) == expected
    rebuilt = subprocess.run(
        [sys.executable, "-m", "baton", "kpi", "rebuild", "--url", fleet.url("kpi")],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert settled_kpis(api, expected) == expected
