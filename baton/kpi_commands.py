"""`baton kpi rebuild` and `baton report baton-meeting`: the KPI service from the terminal."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from shared.auth import mint_token

console = Console()
err = Console(stderr=True)

kpi_app = typer.Typer(help="The KPI service's read model.", no_args_is_help=True)
report_app = typer.Typer(help="Reports of the KPI service.", no_args_is_help=True)

UrlOption = Annotated[
    str | None, typer.Option(help="the KPI service (default: http://127.0.0.1:BATON_KPI_PORT)")
]
TokenOption = Annotated[str | None, typer.Option(help="bearer token (default: minted here)")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(1)


def _client(url: str | None, token: str | None, scopes: list[str]) -> httpx.Client:
    from services.kpi.settings import Settings

    settings = Settings()
    try:
        bearer = token or mint_token(
            settings.resolved_jwt_secret(), subject="baton-cli", scopes=scopes
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    return httpx.Client(
        base_url=url or f"http://127.0.0.1:{settings.port}",
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=30,
    )


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        detail = response.json().get("detail") if response.content else response.reason_phrase
        raise _fail(f"{response.status_code} from {response.request.url}: {detail}")
    return response.json()


@kpi_app.command("rebuild")
def rebuild(
    url: UrlOption = None,
    token: TokenOption = None,
    wait: Annotated[float, typer.Option(help="seconds to wait for the catch-up")] = 600.0,
) -> None:
    """Drop the KPI read model and consume every topic again from the beginning.

    With the KPI service running, it rebuilds in place; with it stopped, the read model is
    cleared here and the service rebuilds when it starts. After a broker lost its data, run
    `baton replay <service>` for each department first.
    """
    with _client(url, token, ["kpi:read", "kpi:write"]) as client:
        try:
            started = _checked(client.post("/v1/rebuild"))
        except httpx.ConnectError:
            generation = asyncio.run(_clear_offline())
            console.print(
                f"The KPI service is not running: read model cleared here (generation "
                f"{generation}); it consumes every topic from the beginning when it starts."
            )
            return
        console.print(f"Rebuilding the read model (generation {started['generation']})...")
        began, deadline = time.monotonic(), time.monotonic() + wait
        idle = 0  # the lag is as the broker reports it: trust it once it stays at zero
        with console.status("Consuming the topics from the beginning...") as status:
            while idle < 4:
                if time.monotonic() > deadline:
                    raise _fail(f"not caught up within {wait:g} s; `GET /v1/rebuild` tells the lag")
                state = _checked(client.get("/v1/rebuild"))
                idle = idle + 1 if state["lag"] == 0 else 0
                status.update(f"Consuming the topics from the beginning... lag {state['lag']}")
                time.sleep(0.5)
    console.print(f"Rebuilt in {time.monotonic() - began:.1f} s ({state['consumer_group']}).")


async def _clear_offline() -> int:
    from services.kpi.app import SPEC
    from services.kpi.rebuild import clear
    from services.kpi.settings import Settings
    from shared.db import create_engine, session_factory
    from shared.migrations import upgrade

    settings = Settings()
    engine = create_engine(settings.db_url)
    try:
        await upgrade(engine, "kpi", SPEC.migrations)
        return await clear(session_factory(engine))
    finally:
        await engine.dispose()


@report_app.command("baton-meeting")
def baton_meeting(
    week: Annotated[
        str | None, typer.Option(help="ISO week, e.g. 2026-W47 (default: the last full week)")
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Print the weekly baton meeting: every hand-off and KPI against the week before."""
    from services.kpi.pages import DEPARTMENT_NAMES, HANDOFF_NAMES, figure, signed

    with _client(url, token, ["kpi:read"]) as client:
        try:
            report = _checked(
                client.get("/v1/reports/baton-meeting", params={"week": week} if week else {})
            )
        except httpx.ConnectError as exc:
            raise _fail(f"cannot reach the KPI service at {client.base_url}: {exc}") from exc
    console.print(
        f"[bold]Baton meeting {report['week']}[/] ({report['start']} to {report['end']}, "
        f"{report['timezone']}; money in {report['currency']} minor units), "
        f"against {report['previous_week']}"
    )
    handoffs = Table(
        "hand-off",
        "passed",
        "change",
        "in SLA",
        "breached",
        "open",
        "compliance",
        "change",
        title="Hand-offs",
    )
    turned_back = []
    for row in report["handoffs"]:
        now, change = row["this_week"], row["change"]
        handoffs.add_row(
            HANDOFF_NAMES[row["handoff"]],
            figure(now["passed"]),
            signed(change["passed"]),
            figure(now["accepted_in_sla"]),
            figure(now["breached"]),
            figure(now["open"]),
            figure(now["compliance_rate"], "compliance_rate"),
            signed(change["compliance_rate"], "compliance_rate"),
        )
        turned_back += [
            f"  {row['handoff']} {kind} {r['total']}: "
            + ", ".join(f"{x['reason']} ({x['count']})" for x in r["reasons"])
            for kind, r in now["rejected"].items()
            if r["total"]
        ]
    console.print(handoffs)
    if turned_back:
        console.print("Turned back:", *turned_back, sep="\n", soft_wrap=True)
    for department, rows in report["kpis"].items():
        table = Table(
            "KPI",
            report["week"],
            report["previous_week"],
            "change",
            title=DEPARTMENT_NAMES[department],
        )
        for row in rows:
            name = row["kpi"]
            table.add_row(
                name,
                figure(row["this_week"], name),
                figure(row["previous_week"], name),
                signed(row["change"], name),
            )
        console.print(table)
