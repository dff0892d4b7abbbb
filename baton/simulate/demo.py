"""The demo data `baton up` loads into an empty data dir: the dashboard is full at first sight."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import httpx
from rich.console import Console

from baton.simulate.http import DEPARTMENTS, SimulationError
from baton.simulate.run import local_urls, simulate, tokens_for
from baton.simulate.scenarios import THE_MODEL

MARKER = "demo-loaded"
DEMO_LEADS = 2000
DEMO_MONTHS = 6
DEMO_SEED = 1


async def _has_leads(url: str, token: str) -> bool:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.get(
            "/v1/leads", params={"limit": 1}, headers={"Authorization": f"Bearer {token}"}
        )
    response.raise_for_status()
    return bool(response.json()["items"])


def load_demo(data_dir: Path, ports: Mapping[str, int], secret: str, console: Console) -> None:
    """Simulate the demo funnel once per data dir (`<data_dir>/demo-loaded` says it was done).

    A data dir that already holds leads is left as it is; a failure is a warning, not an exit.
    """
    marker = data_dir / MARKER
    if marker.exists():
        return
    if not all(name in ports for name in DEPARTMENTS):
        console.print("No demo data: it needs all four departments running.")
        return
    urls = local_urls(ports, "127.0.0.1", [])
    tokens = tokens_for(secret, None)
    try:
        if asyncio.run(_has_leads(urls["marketing"], tokens["marketing"])):
            marker.write_text("data found; no demo loaded\n")
            return
        console.print(
            f"Loading demo data: {DEMO_LEADS} leads over the last {DEMO_MONTHS} months "
            "through the public APIs (`baton up --no-demo` skips this)"
        )
        result = asyncio.run(
            simulate(
                urls,
                tokens,
                scenario=THE_MODEL,
                leads=DEMO_LEADS,
                months=DEMO_MONTHS,
                seed=DEMO_SEED,
                console=console,
            )
        )
    except (SimulationError, httpx.HTTPError) as exc:
        console.print(f"[yellow]The demo data could not be loaded: {exc}[/]")
        return
    tally, seconds = result.outcome.tally, result.outcome.seconds
    console.print(
        f"Demo data loaded in {seconds:.0f} s: {tally.leads} leads, {tally.mqls} MQLs, "
        f"{tally.sqls} SQLs, {tally.won} won, {tally.accounts} customers, "
        f"{tally.churned} churned"
    )
    marker.write_text(f"seed {DEMO_SEED}, {DEMO_LEADS} leads, {DEMO_MONTHS} months\n")
