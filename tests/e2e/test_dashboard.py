"""The KPI dashboard in real headless Chromium (Debian's `chromium`, see scripts/ensure-browser).

The scripted fortnight is published to the KPI service; the page, reading the /v1 API with the
token from its address fragment, must show the hand-computed numbers: every KPI tile, the funnel
counts in its SVG, the four hand-offs of the SLA chart. A screenshot is kept in
build/test-artifacts/dashboard.png. Without a token, or with an expired one, the page says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.auth import mint_token
from tests import kpi_scenario as scenario
from tests.helpers import TEST_SECRET, token

REQUIRE_BROWSER = os.environ.get("BATON_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
RANGE = {"from": scenario.START.isoformat(), "to": scenario.END.isoformat()}
QUERY = f"from={RANGE['from']}&to={RANGE['to']}&granularity=week"
CHARTS = ("funnel", "sla", "revenue")
MINUS = "\u2212"  # the page writes a decrease with a minus sign, not a hyphen
FLAGS = (
    "--headless",
    "--no-sandbox",  # runs as root in containers and CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Virtual time runs ahead only while no request is pending: the page's fetches finish first.
    "--virtual-time-budget=15000",
)
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def chromium() -> str:
    """`chromium` from PATH; without it the test skips (fails with BATON_REQUIRE_BROWSER=1)."""
    found = shutil.which("chromium")
    if found is None:
        reason = "no `chromium` on PATH (scripts/ensure-browser installs Debian's package)"
        if REQUIRE_BROWSER:
            pytest.fail(f"BATON_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return found


async def browse(chromium: str, url: str, workdir: Path, *actions: str) -> str:
    """Open `url` in a fresh headless Chromium, let it run, and return what it printed."""
    profile = workdir / f"profile-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        chromium,
        *FLAGS,
        f"--user-data-dir={profile}",
        *actions,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"chromium did not finish within 120 s on {url}") from None
    assert process.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode()


class Page(HTMLParser):
    """What the rendered DOM shows: state, message, tiles, chart texts, SLA table rows."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.state: str | None = None
        self.message = ""
        self.tiles: dict[str, Any] = {}
        self.shown: dict[str, str] = {}
        self.trends: dict[str, tuple[str, str, str]] = {}
        self.texts: dict[str, list[tuple[str, str]]] = {chart: [] for chart in CHARTS}
        self.handoffs: list[str] = []
        self.token_form_hidden = True
        self._chart: str | None = None
        self._depth = 0
        self._svg_text: str | None = None
        self._groups: list[str] = []
        self._capture: tuple[str, str] | None = None
        self._tile = ""
        self.feed(dom)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value or "" for name, value in attrs}
        klass = a.get("class", "")
        if tag == "body":
            self.state = a.get("data-state")
        elif tag == "form" and a.get("id") == "token-form":
            self.token_form_hidden = "hidden" in a
        elif a.get("id") == "message":
            self._capture = ("message", "")
        elif "data-kpi" in a:
            self._tile = a["data-kpi"]
            self.tiles[self._tile] = json.loads(a["data-value"])
        elif klass == "value" and self._tile:
            self._capture = ("value", self._tile)
        elif "data-trend" in a and self._tile:
            self.trends[self._tile] = (a["data-trend"], klass.removeprefix("trend").strip(), "")
            self._capture = ("trend", self._tile)
        elif tag == "tr" and "data-handoff" in a:
            self.handoffs.append(a["data-handoff"])
        if tag == "div" and self._chart:
            self._depth += 1
        elif tag == "div" and a.get("id") in CHARTS:
            self._chart, self._depth = a["id"], 1
        if tag == "g":
            self._groups.append(klass)
        if tag == "text" and self._chart:
            # Plotly classes a label's text (`bartext`) or the group around it (`ytick`).
            self._svg_text = " ".join([klass, self._groups[-1] if self._groups else ""])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._chart:
            self._depth -= 1
            if self._depth == 0:
                self._chart = None
        if tag == "text":
            self._svg_text = None
        if tag == "g" and self._groups:
            self._groups.pop()
        if tag == "div":
            self._capture = None

    def handle_data(self, data: str) -> None:
        if self._chart and self._svg_text is not None:
            self.texts[self._chart].append((self._svg_text, data))
        if self._capture is None:
            return
        kind, key = self._capture
        if kind == "message":
            self.message += data
        elif kind == "value":
            self.shown[key] = self.shown.get(key, "") + data
        elif kind == "trend":
            direction, mood, text = self.trends[key]
            self.trends[key] = (direction, mood, text + data)

    def chart_text(self, chart: str, klass: str) -> list[str]:
        return [text for kind, text in self.texts[chart] if klass in kind.split()]


def flat(kpis: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`{"marketing.leads_captured": 6, "inside_sales.lead_response_time.p90_hours": 48.0, ...}`"""
    values: dict[str, Any] = {}
    for department, named in kpis.items():
        for name, value in named.items():
            if isinstance(value, dict):
                values.update({f"{department}.{name}.{k}": v for k, v in value.items()})
            else:
                values[f"{department}.{name}"] = value
    return values


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@sqlite_only
async def test_the_dashboard_shows_the_scenario(
    chromium: str, kpi: httpx.AsyncClient, tmp_path: Path
) -> None:
    await scenario.publish_all(kpi.bootstrap, scenario.events())  # type: ignore[attr-defined]
    assert (await scenario.settled(kpi, RANGE))["total"]["kpis"] == scenario.TOTAL
    url = f"{kpi.base_url}/dashboard?{QUERY}#token={token('kpi:read')}"

    shot = tmp_path / "dashboard.png"
    # One run: the DOM once everything has rendered, and a screenshot of the same moment.
    dom = await browse(
        chromium, url, tmp_path, "--dump-dom", f"--screenshot={shot}", "--window-size=1400,2400"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard.html").write_text(dom)  # to look at when an assertion fails
    page = Page(dom)

    assert page.state == "ready", page.message
    assert page.tiles == flat(scenario.TOTAL)  # every KPI of the range, raw, on its tile
    assert page.tiles["marketing.leads_captured"] == 6
    assert page.tiles["inside_sales.handling_rate"] == 0.6
    assert page.tiles["field_sales.revenue_won"] == 1_200_000
    assert page.tiles["customer_success.nps"] == 0
    assert page.shown["field_sales.revenue_won"] == "¥1,200,000"
    assert page.shown["inside_sales.handling_rate"] == "60.0%"
    assert page.shown["customer_success.nps"] == "0"
    assert page.shown["inside_sales.lead_response_time.median_hours"] == "4.0 h"
    # The trends: 2026-W11 against 2026-W10, coloured by which way is better.
    assert page.trends["marketing.leads_captured"][:2] == ("flat", "neutral")
    assert page.trends["field_sales.revenue_won"] == ("up", "good", "▲ +¥1,200,000")
    assert page.trends["customer_success.nps"] == ("down", "bad", f"▼ {MINUS}100")
    assert page.trends["customer_success.logo_churn_rate"] == ("down", "good", f"▼ {MINUS}50.0 pp")
    assert page.trends["field_sales.win_rate"][0] == "none"  # null in W10: no arrow

    counts = [str(stage["count"]) for stage in scenario.FUNNEL]
    assert page.chart_text("funnel", "bartext") == counts  # 6, 5, 2, 1, 1 on the funnel's bars
    assert page.handoffs == [row["handoff"] for row in scenario.SLA]
    sla_labels = page.chart_text("sla", "ytick")
    assert len(sla_labels) == 4, sla_labels
    assert {label.split(" ·")[0] for label in sla_labels} == {"MQL", "SQL", "Deal", "Churn risk"}
    assert "60.0%  (3 of 5)" in page.chart_text("sla", "bartext")
    assert page.chart_text("revenue", "xtick") == ["2026-W10", "2026-W11"]

    # One week: its own numbers, a null KPI as "—", and no trend with a single period.
    week = f"from={RANGE['from']}&to={scenario.MIDDLE.isoformat()}&granularity=week"
    url = f"{kpi.base_url}/dashboard?{week}#token={token('kpi:read')}"
    first_week = Page(await browse(chromium, url, tmp_path, "--dump-dom"))
    assert first_week.state == "ready", first_week.message
    assert first_week.tiles == flat(scenario.W10)
    assert first_week.tiles["field_sales.win_rate"] is None
    assert first_week.shown["field_sales.win_rate"] == "—"
    assert {direction for direction, _, _ in first_week.trends.values()} == {"none"}

    data = shot.read_bytes()
    assert png_size(data) == (1400, 2400)
    assert len(data) > 50_000, f"a {len(data)}-byte screenshot is too plain to show the page"
    shutil.copyfile(shot, ARTIFACTS / "dashboard.png")


@sqlite_only
async def test_without_a_valid_token_the_dashboard_asks_for_one(
    chromium: str, kpi: httpx.AsyncClient, tmp_path: Path
) -> None:
    page = Page(await browse(chromium, f"{kpi.base_url}/dashboard", tmp_path, "--dump-dom"))
    assert page.state == "token"
    assert not page.token_form_hidden
    assert page.tiles == {}

    expired = mint_token(
        TEST_SECRET, subject="tests", scopes=["kpi:read"], ttl=timedelta(minutes=-5)
    )
    url = f"{kpi.base_url}/dashboard?{QUERY}#token={expired}"
    page = Page(await browse(chromium, url, tmp_path, "--dump-dom"))
    assert page.state == "error"
    assert "expired" in page.message and "401" in page.message, page.message
    assert not page.token_form_hidden

    wrong_scope = f"{kpi.base_url}/dashboard#token={token('marketing:read')}"
    page = Page(await browse(chromium, wrong_scope, tmp_path, "--dump-dom"))
    assert page.state == "error"
    assert "kpi:read" in page.message and "403" in page.message, page.message
