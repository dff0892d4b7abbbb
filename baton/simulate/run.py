"""`baton simulate` end to end: read the departments' rules, plan, drive, show the figures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from baton.simulate.driver import Driver, Outcome, Tally
from baton.simulate.figures import PlannedFunnel, planned_funnel
from baton.simulate.http import DEPARTMENTS, Services, SimulationError, problem
from baton.simulate.plan import Plan, Policies, make_plan
from baton.simulate.scenarios import SCENARIOS, Scenario
from services.customer_success.domain import HealthModel
from services.marketing.domain import FitRule, ScoringModel
from shared.auth import mint_token, scopes_of


@dataclass(frozen=True)
class Result:
    plan: Plan
    planned: PlannedFunnel
    outcome: Outcome


async def read_policies(services: Services) -> Policies:
    """The rules the departments run with: scoring, response and acceptance SLAs, health."""
    scoring = await _read(services, "marketing", "/v1/scoring-model")
    response_sla = await _read(services, "inside_sales", "/v1/sla")
    sales_policy = await _read(services, "field_sales", "/v1/sla")
    health = await _read(services, "customer_success", "/v1/health-model")
    model = ScoringModel(
        activity_points=dict(scoring["activity_points"]),
        fit_rules=tuple(
            FitRule(r["field"], r["contains"], int(r["points"])) for r in scoring["fit_rules"]
        ),
        decay_after_days=float(scoring["decay_after_days"]),
        decay_half_life_days=float(scoring["decay_half_life_days"]),
        mql_min_score=int(scoring["mql_min_score"]),
        mql_min_touches=int(scoring["mql_min_touches"]),
    )
    return Policies(
        scoring=model,
        response_time=timedelta(hours=float(response_sla["response_hours"])),
        accept_within=timedelta(hours=float(sales_policy["accept_hours"])),
        loss_reasons=tuple(sales_policy["loss_reasons"]),
        health=HealthModel(
            weights={str(k): float(v) for k, v in health["weights"].items()},
            red_below=int(health["red_below"]),
            yellow_below=int(health["yellow_below"]),
            logins_per_user_target=float(health["logins_per_user_target"]),
            tickets_limit=int(health["tickets_limit"]),
        ),
    )


async def _read(services: Services, service: str, path: str) -> dict[str, Any]:
    response = await services.get(service, path)
    if response.status_code != 200:
        raise SimulationError(f"cannot read {service} {path}: {problem(response)}")
    return dict(response.json())


async def simulate(
    urls: Mapping[str, str],
    tokens: Mapping[str, str],
    *,
    scenario: Scenario,
    leads: int,
    months: float,
    seed: int,
    concurrency: int = 16,
    console: Console | None = None,
    now: datetime | None = None,
) -> Result:
    """Plan `leads` leads over the last `months` and play them; progress on `console`."""
    async with Services.open(urls, tokens, connections=concurrency + 4) as services:
        policies = await read_policies(services)
        plan = make_plan(
            seed=seed,
            scenario=scenario,
            leads=leads,
            months=months,
            now=now or datetime.now(UTC),
            policies=policies,
        )
        with _progress(console) as progress:
            task = progress.add_task("Simulating", total=len(plan.leads))

            def advance(tally: Tally) -> None:
                counts = f"MQL {tally.mqls} · SQL {tally.sqls} · won {tally.won}"
                progress.update(task, completed=tally.done, description=f"Simulating ({counts})")

            driver = Driver(
                plan,
                services,
                response_time=policies.response_time,
                concurrency=concurrency,
                on_lead_done=advance,
            )
            outcome = await driver.run()
    return Result(plan, planned_funnel(plan, policies.response_time), outcome)


def _progress(console: Console | None) -> Progress:
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    return Progress(
        *columns,
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
        transient=False,
    )


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def summary(result: Result) -> Table:
    """Planned and loaded figures of a run, side by side, with how long it took."""
    planned, tally = result.planned, result.outcome.tally
    table = Table(title=f"Simulation: {result.plan.scenario}, seed {result.plan.seed}")
    for column in ("", "planned", "loaded"):
        table.add_column(column, justify="right" if column else "left")
    rows = [
        ("leads", planned.leads, tally.leads),
        ("MQLs", planned.mqls, tally.mqls),
        ("MQLs first touched within the SLA", planned.touched_in_time, tally.touched_in_time),
        ("SQLs (opportunities)", planned.sqls, tally.sqls),
        ("won", planned.won, tally.won),
        ("lost", planned.lost, tally.lost),
        ("customers (accounts)", planned.won, tally.accounts),
        ("churned", planned.churned, tally.churned),
        ("upsells", planned.upsells, tally.upsells),
        ("renewals", planned.renewals, tally.renewals),
    ]
    for label, want, got in rows:
        table.add_row(label, str(want), str(got))
    table.add_row("churn risks raised", "", str(tally.churn_risks))
    table.add_section()
    table.add_row("lead handling rate", _percent(planned.handling_rate), "")
    table.add_row("SQL rate (settled MQLs)", _percent(planned.sql_rate), "")
    table.add_row("win rate", _percent(planned.win_rate), _rate(tally.won, tally.won + tally.lost))
    table.add_section()
    seconds = result.outcome.seconds
    table.add_row("time taken", "", f"{seconds:.1f} s")
    table.add_row("leads per second", "", f"{tally.done / seconds:.1f}" if seconds else "-")
    requests = result.outcome.requests
    table.add_row("requests (retried)", "", f"{requests} ({result.outcome.retries})")
    table.add_row("requests per second", "", f"{requests / seconds:.0f}" if seconds else "-")
    return table


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def problems(tally: Tally) -> list[str]:
    """Lines worth a warning: leads skipped, stalled or stopped, with the first errors."""
    lines = []
    if tally.already_loaded:
        lines.append(f"{tally.already_loaded} lead(s) already loaded (known email): skipped")
    if tally.stalled:
        lines.append(f"{tally.stalled} hand-off(s) did not arrive in time: those leads stopped")
    if tally.failed:
        lines.append(f"{tally.failed} lead(s) stopped by an unexpected answer:")
        lines.extend(f"  {error}" for error in tally.errors)
    return lines


def local_urls(ports: Mapping[str, int], host: str, overrides: list[str]) -> dict[str, str]:
    """Each department's base URL: `http://host:port`, unless `SERVICE=URL` overrides it."""
    urls = {name: f"http://{host}:{ports[name]}" for name in DEPARTMENTS}
    for item in overrides:
        name, sep, url = item.partition("=")
        if not sep or name not in DEPARTMENTS or not url.startswith(("http://", "https://")):
            raise SimulationError(
                f"--url {item!r}: expected SERVICE=http(s)://..., SERVICE one of "
                + ", ".join(DEPARTMENTS)
            )
        urls[name] = url.rstrip("/")
    return urls


def tokens_for(secret: str | None, token: str | None) -> dict[str, str]:
    """`token` for every department, or one minted per department (its read and write scopes)."""
    if token:
        return dict.fromkeys(DEPARTMENTS, token)
    assert secret is not None
    return {
        name: mint_token(secret, subject="baton-simulate", scopes=scopes_of(name))
        for name in DEPARTMENTS
    }


def run_command(
    console: Console,
    *,
    urls: Mapping[str, str],
    tokens: Mapping[str, str],
    scenario: str,
    leads: int,
    months: float,
    seed: int,
    concurrency: int,
) -> int:
    """`baton simulate`: run, print the summary; the exit code (1 if some leads stopped)."""
    if scenario not in SCENARIOS:
        raise SimulationError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    result = asyncio.run(
        simulate(
            urls,
            tokens,
            scenario=SCENARIOS[scenario],
            leads=leads,
            months=months,
            seed=seed,
            concurrency=concurrency,
            console=console,
        )
    )
    console.print(summary(result))
    trouble = problems(result.outcome.tally)
    for line in trouble:
        console.print(f"[yellow]{line}[/]")
    return 1 if result.outcome.tally.failed or result.outcome.tally.stalled else 0
