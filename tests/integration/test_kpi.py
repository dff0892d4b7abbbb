"""The KPI service on a real broker and both databases: a scripted fortnight of events, published
by a plain aiokafka producer, gives exactly the hand-computed KPIs, in order or shuffled with
duplicates, and again after a rebuild."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import httpx
from typer.testing import CliRunner

from baton.cli import app as cli
from tests import kpi_scenario as scenario
from tests.helpers import auth, eventually, token

READ = auth("kpi:read")
WRITE = auth("kpi:read", "kpi:write")
runner = CliRunner()
RANGE = {"from": scenario.START.isoformat(), "to": scenario.END.isoformat()}


def cli_target(client: httpx.AsyncClient, *scopes: str) -> list[str]:
    return ["--url", str(client.base_url), "--token", token(*scopes)]


async def settled(client: httpx.AsyncClient) -> dict[str, Any]:
    return await scenario.settled(client, RANGE)


def assert_scenario_kpis(body: dict[str, Any]) -> None:
    assert [p["label"] for p in body["periods"]] == ["2026-W10", "2026-W11"]
    assert body["timezone"] == "Asia/Tokyo"
    assert body["periods"][0]["kpis"] == scenario.W10
    assert body["periods"][1]["kpis"] == scenario.W11
    assert body["total"]["kpis"] == scenario.TOTAL


async def test_scripted_events_give_the_hand_computed_kpis(kpi: httpx.AsyncClient) -> None:
    envelopes = scenario.events()
    assert len(envelopes) == 50
    await scenario.publish_all(kpi.bootstrap, envelopes)  # type: ignore[attr-defined]
    assert_scenario_kpis(await settled(kpi))

    funnel = await kpi.get("/v1/funnel", params=RANGE, headers=READ)
    assert funnel.status_code == 200, funnel.text
    assert funnel.json()["stages"] == scenario.FUNNEL

    sla = await kpi.get("/v1/sla-compliance", params=RANGE, headers=READ)
    assert sla.json()["handoffs"] == scenario.SLA

    webinar = await kpi.get(
        "/v1/kpis/marketing",
        params={**RANGE, "granularity": "week", "source": "webinar"},
        headers=READ,
    )
    assert webinar.status_code == 200, webinar.text
    assert set(webinar.json()["total"]["kpis"]) == {"marketing"}
    assert webinar.json()["total"]["kpis"]["marketing"] == scenario.W10["marketing"]
    by_campaign = await kpi.get(
        "/v1/kpis", params={**RANGE, "campaign_id": str(scenario.C2)}, headers=READ
    )
    total = by_campaign.json()["total"]["kpis"]
    assert total["marketing"]["leads_captured"] == 2
    assert total["marketing"]["marketing_cost"] == 300_000
    assert total["customer_success"]["nps"] is None  # cannot be filtered by campaign: null

    # The rebuild drops the read model and consumes everything again: the same numbers.
    started = await kpi.post("/v1/rebuild", headers=WRITE)
    assert started.status_code == 202, started.text
    assert started.json()["generation"] == 1
    assert_scenario_kpis(await settled(kpi))

    # ... and so does `baton kpi rebuild` against the running service.
    rebuilt = await asyncio.to_thread(
        runner.invoke, cli, ["kpi", "rebuild", *cli_target(kpi, "kpi:read", "kpi:write")]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "Rebuilt in" in rebuilt.output
    assert (await kpi.get("/v1/rebuild", headers=READ)).json()["generation"] == 2
    assert_scenario_kpis(await settled(kpi))


async def test_shuffled_and_duplicated_events_give_the_same_kpis(kpi: httpx.AsyncClient) -> None:
    envelopes = scenario.events()
    rng = random.Random(20260302)
    shuffled = envelopes + rng.sample(envelopes, 15)
    rng.shuffle(shuffled)
    await scenario.publish_all(kpi.bootstrap, shuffled)  # type: ignore[attr-defined]
    assert_scenario_kpis(await settled(kpi))


async def test_kpis_kept_in_memory_follow_events_that_arrive_backdated(
    kpi: httpx.AsyncClient,
) -> None:
    """The service keeps worked-out periods until a day they read changes: the second week's
    events first, KPIs read (and kept) on the way, then the first week's and February's events,
    which change the opening balances, the first week's totals and the second week's durations
    (an MQL of the first week qualified in the second): exactly the scenario's KPIs."""
    envelopes = scenario.events()
    middle = datetime.combine(scenario.MIDDLE, datetime.min.time(), UTC)
    later = [e for e in envelopes if e.time >= middle]
    earlier = [e for e in envelopes if e.time < middle]
    assert later and earlier
    await scenario.publish_all(kpi.bootstrap, later)  # type: ignore[attr-defined]

    async def read_when_idle() -> dict[str, Any] | None:
        response = await kpi.get("/v1/kpis", params={**RANGE, "granularity": "week"}, headers=READ)
        assert response.status_code == 200, response.text
        status = (await kpi.get("/v1/rebuild", headers=READ)).json()
        body: dict[str, Any] = response.json()
        second_week = body["periods"][1]["kpis"]["marketing"]
        return body if status["lag"] == 0 and second_week["leads_captured"] == 3 else None

    partial = await eventually(read_when_idle, timeout=60)
    assert partial["periods"][0]["kpis"]["marketing"]["leads_captured"] == 0
    assert partial["total"]["kpis"] != scenario.TOTAL
    await scenario.publish_all(kpi.bootstrap, earlier)  # type: ignore[attr-defined]
    assert_scenario_kpis(await settled(kpi))


async def test_the_baton_meeting_compares_the_week_with_the_one_before(
    kpi: httpx.AsyncClient,
) -> None:
    await scenario.publish_all(kpi.bootstrap, scenario.events())  # type: ignore[attr-defined]
    await settled(kpi)
    response = await kpi.get("/v1/reports/baton-meeting", params={"week": "2026-W11"}, headers=READ)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["week"], report["previous_week"]) == ("2026-W11", "2026-W10")
    mql = next(h for h in report["handoffs"] if h["handoff"] == "mql")
    assert (mql["this_week"]["passed"], mql["previous_week"]["passed"]) == (2, 3)
    assert mql["change"] == {"passed": -1.0, "compliance_rate": scenario.r(0.5 - 2 / 3)}
    assert mql["previous_week"]["rejected"]["recycled"]["reasons"] == [
        {"reason": "no budget this year", "count": 1}
    ]
    revenue = next(k for k in report["kpis"]["field_sales"] if k["kpi"] == "revenue_won")
    assert revenue == {
        "kpi": "revenue_won",
        "this_week": 1_200_000,
        "previous_week": 0,
        "change": 1_200_000,
    }
    nps = next(k for k in report["kpis"]["customer_success"] if k["kpi"] == "nps")
    assert (nps["this_week"], nps["previous_week"], nps["change"]) == (-50.0, 50.0, -100.0)

    printed = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["report", "baton-meeting", "--week", "2026-W11", *cli_target(kpi, "kpi:read")],
        terminal_width=200,
    )
    assert printed.exit_code == 0, printed.output
    assert "Baton meeting 2026-W11" in printed.output
    assert "mql disqualified 1: student (1)" in printed.output
    assert "1,200,000" in printed.output

    html = await kpi.get(
        "/v1/reports/baton-meeting",
        params={"week": "2026-W11"},
        headers={**READ, "Accept": "text/html"},
    )
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    assert "Baton meeting — 2026-W11" in html.text
    assert "no budget this year" not in html.text  # W10's reason, not this week's
    assert "student (1)" in html.text


async def test_bad_ranges_are_problems_naming_the_field(kpi: httpx.AsyncClient) -> None:
    cases = [
        ({"from": "2026-03-09", "to": "2026-03-02"}, "to"),
        ({"from": "2020-01-01", "to": "2026-01-01", "granularity": "day"}, "from"),
        ({"granularity": "quarter"}, "granularity"),
        ({"source": "radio"}, "source"),
        ({"from": "yesterday"}, "from"),
    ]
    for params, field in cases:
        response = await kpi.get("/v1/kpis", params=params, headers=READ)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert field in response.text
    week = await kpi.get("/v1/reports/baton-meeting", params={"week": "2026-W60"}, headers=READ)
    assert week.status_code == 422 and "week" in week.text
    unknown = await kpi.get("/v1/kpis/sales", headers=READ)
    assert unknown.status_code == 422 and "department" in unknown.text
    assert (await kpi.get("/v1/kpis")).status_code == 401
    assert (await kpi.post("/v1/rebuild", headers=READ)).status_code == 403


async def test_headline_kpis_are_prometheus_gauges(kpi: httpx.AsyncClient) -> None:
    lead = scenario.events()[4]  # a LeadCaptured, moved to now: this week's and month's lead
    assert lead.type == "baton.LeadCaptured.v1"
    now = lead.model_copy(update={"time": datetime.now(UTC)})
    await scenario.publish_all(kpi.bootstrap, [now])  # type: ignore[attr-defined]

    async def exported() -> str | None:
        text = (await kpi.get("/metrics")).text
        wanted = 'baton_kpi_value{department="marketing",kpi="leads_captured",period="week"} 1.0'
        return text if wanted in text else None

    metrics = await eventually(exported, timeout=30)
    assert 'baton_kpi_value{department="marketing",kpi="leads_captured",period="month"} 1.0' in (
        metrics
    )
    assert 'kpi="sla_compliance.mql"' not in metrics  # null: no MQLs yet, so no sample
