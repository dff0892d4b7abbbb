"""The `baton` command: run the whole system, one service, mint tokens, replay, topics, schemas."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from baton.broker import EmbeddedBroker, port_open
from baton.supervisor import Supervisor, log_tail
from shared.auth import ADMIN_SCOPE, mint_token, scopes_of
from shared.bus import broker_reachable, ensure_topics, list_topics
from shared.settings import ALL_TOPICS, SERVICES, BatonSettings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

ServiceArg = Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def known_service(name: str) -> str:
    if name not in SERVICES:
        raise fail(f"unknown service {name!r}; one of: {', '.join(SERVICES)}", 2)
    return name


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


@app.command()
def up(
    data_dir: Annotated[Path | None, typer.Option(help="default: BATON_DATA_DIR or ./var")] = None,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for /readyz")] = 60.0,
) -> None:
    """Start the broker (embedded unless one answers), the topics and all five services."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # probing a broker is not an error
    settings = BatonSettings(data_dir=data_dir) if data_dir else BatonSettings()
    root = settings.data_dir.resolve()
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "BATON_DATA_DIR": str(root)}
    env.setdefault("BATON_LOG_FORMAT", settings.log_format)
    broker: EmbeddedBroker | None = None
    signal.signal(signal.SIGTERM, _raise_stop)
    supervisor = Supervisor(root / "logs", env)
    try:
        if asyncio.run(broker_reachable(settings)):
            console.print(f"Using the broker at [bold]{settings.kafka_bootstrap}[/]")
        else:
            broker = _start_embedded(settings, root)
            settings = settings.model_copy(
                update={"kafka_bootstrap": broker.bootstrap, "kafka_idempotence": False}
            )
            env["BATON_KAFKA_BOOTSTRAP"] = broker.bootstrap
            env["BATON_KAFKA_IDEMPOTENCE"] = "false"
        asyncio.run(ensure_topics(settings, ALL_TOPICS))
        secret = BatonSettings(data_dir=root).resolved_jwt_secret()
        _start_services(supervisor, ready_timeout)
        (root / "baton-up.pids").write_text(
            "".join(f"{c.service} {c.process.pid}\n" for c in supervisor.children)
            + (f"broker {broker.pid}\n" if broker else "")
        )
        _print_summary(supervisor, settings.kafka_bootstrap, secret)
        while not (dead := supervisor.exited()):
            time.sleep(0.5)
        for child in dead:
            err.print(f"[red]{child.service} exited with code {child.process.returncode}[/]")
            err.print(log_tail(child.log_file))
        raise typer.Exit(1)
    except (KeyboardInterrupt, _Stop):
        console.print("\nStopping the services, then the broker...")
    finally:
        supervisor.stop()
        if broker is not None:
            broker.stop()
        console.print("Stopped.")


def _start_embedded(settings: BatonSettings, root: Path) -> EmbeddedBroker:
    host, _, port_text = settings.kafka_bootstrap.rpartition(":")
    local = host in ("127.0.0.1", "localhost") and port_text.isdigit()
    port = int(port_text) if local and not port_open("127.0.0.1", int(port_text)) else None
    (root / "logs").mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, log_file=root / "logs" / "broker.log")
    with console.status("Starting the embedded broker..."):
        broker.start()
    console.print(f"Embedded broker (Tansu, memory only) at [bold]{broker.bootstrap}[/]")
    return broker


def _start_services(supervisor: Supervisor, ready_timeout: float) -> None:
    from services import settings_class

    for service in SERVICES:
        supervisor.start(service, settings_class(service)().port)
    with console.status("Starting the services...") as status:

        def progress(ready: int, total: int) -> None:
            status.update(f"Starting the services... {ready}/{total} ready")

        late = supervisor.wait_ready(ready_timeout, progress)
    for child in late:
        state = "exited" if child.process.poll() is not None else "is not ready"
        err.print(f"[red]{child.service} {state}[/]; the end of {child.log_file}:")
        err.print(log_tail(child.log_file))
    if late:
        raise typer.Exit(1)


def _print_summary(supervisor: Supervisor, bootstrap: str, secret: str) -> None:
    table = Table(title="Baton is up")
    for column in ("service", "URL", "API docs"):
        table.add_column(column)
    for child in supervisor.children:
        table.add_row(child.service, child.url, f"{child.url}/docs")
    console.print(table)
    console.print(f"Broker: {bootstrap}    Logs: {supervisor.children[0].log_file.parent}")
    console.print("Tokens (12 h; `baton token --scope ...` mints more):")
    for child in supervisor.children:
        token = mint_token(secret, subject=f"{child.service}-team", scopes=scopes_of(child.service))
        console.print(f"  [bold]{child.service}[/]: {token}", soft_wrap=True)
    admin = mint_token(secret, subject="admin", scopes=[ADMIN_SCOPE])
    console.print(f"  [bold]admin[/]: {admin}", soft_wrap=True)
    console.print("Press Ctrl-C to stop.")


@app.command()
def serve(
    service: ServiceArg,
    host: Annotated[str | None, typer.Option(help="default: BATON_<SERVICE>_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: BATON_<SERVICE>_PORT")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Run one service under uvicorn (what a container runs)."""
    import uvicorn

    from services import settings_class
    from shared.logs import configure_logging

    settings = settings_class(known_service(service))()
    configure_logging(settings, service)
    uvicorn.run(
        f"services.{service}.app:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        timeout_graceful_shutdown=15,
        proxy_headers=True,
    )


@app.command()
def token(
    scope: Annotated[list[str], typer.Option("--scope", help="repeat for several scopes")],
    subject: Annotated[str, typer.Option(help="who the token is for")] = "cli",
    ttl_hours: Annotated[float, typer.Option(min=0.01, max=24 * 365)] = 12.0,
) -> None:
    """Print a bearer token signed with the configured secret."""
    settings = BatonSettings()
    try:
        secret = settings.resolved_jwt_secret()
    except ValueError as exc:
        raise fail(str(exc)) from exc
    scopes = [s for item in scope for s in item.replace(",", " ").split()]
    valid = {ADMIN_SCOPE} | {s for name in SERVICES for s in scopes_of(name)}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise fail(f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}", 2)
    typer.echo(mint_token(secret, subject=subject, scopes=scopes, ttl=timedelta(hours=ttl_hours)))


@app.command()
def replay(
    service: ServiceArg,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 event time; without a zone it is UTC")
    ] = None,
) -> None:
    """Publish a service's outbox again (from `since`, by event time); consumers dedupe."""
    from services import settings_class
    from shared.outbox import replay as replay_outbox

    settings = settings_class(known_service(service))()
    start = _parse_since(since) if since else None
    if not asyncio.run(broker_reachable(settings)):
        raise fail(f"no broker answers at {settings.kafka_bootstrap}")
    count = asyncio.run(replay_outbox(settings, start))
    console.print(f"Replayed {count} event(s) of {service} to {settings.topic}.")


def _parse_since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise fail(f"--since {value!r} is not an ISO 8601 date-time", 2) from exc
    if parsed.tzinfo is None:
        console.print(f"--since has no time zone; taking it as UTC: {parsed.isoformat()}Z")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@app.command()
def topics() -> None:
    """Create Baton's topics if they are missing, and list the broker's topics."""
    settings = BatonSettings()
    if not asyncio.run(broker_reachable(settings)):
        raise fail(f"no broker answers at {settings.kafka_bootstrap}")
    created = asyncio.run(ensure_topics(settings, ALL_TOPICS))
    table = Table("topic", "partitions", "created now")
    for name, partitions in sorted(asyncio.run(list_topics(settings)).items()):
        table.add_row(name, str(partitions), "yes" if name in created else "")
    console.print(table)


@app.command()
def schemas(
    check: Annotated[bool, typer.Option(help="only check that the files are up to date")] = False,
) -> None:
    """Regenerate docs/asyncapi.yaml and docs/schemas/ from the event models."""
    from shared.events.docs import check_docs, write_docs

    root = Path.cwd()
    if check:
        drift = check_docs(root)
        if drift:
            raise fail("out of date (run `baton schemas`): " + ", ".join(drift))
        console.print("The event catalog documents are up to date.")
        return
    for path in write_docs(root):
        console.print(f"wrote {path.relative_to(root)}")


def main() -> None:
    app()


import_app = typer.Typer(help="Bulk imports through the public APIs.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("leads")
def import_leads(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    url: Annotated[str | None, typer.Option(help="marketing API (default: local port)")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="BATON_TOKEN", help="default: minted from the local secret")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(min=1, max=100_000)] = 5_000,
) -> None:
    """Import leads from a CSV file (with a header) or JSON lines (.jsonl), with progress."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from baton.importing import chunks
    from services import settings_class

    settings = settings_class("marketing")()
    base = url or f"http://127.0.0.1:{settings.port}"
    bearer = token or mint_token(
        settings.resolved_jwt_secret(), subject="baton-import", scopes=["marketing:write"]
    )
    total_rows = sum(1 for _ in file.open(encoding="utf-8-sig", errors="replace")) - (
        0 if file.suffix.lower() in (".jsonl", ".ndjson") else 1
    )
    totals = {"rows": 0, "created": 0, "duplicates": 0}
    errors: list[tuple[int, str, str]] = []
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn())
    with (
        httpx.Client(
            base_url=base, timeout=300, headers={"Authorization": f"Bearer {bearer}"}
        ) as c,
        Progress(*columns, TimeRemainingColumn(), console=console) as progress,
    ):
        task = progress.add_task(f"Importing {file.name}", total=max(total_rows, 0))
        for chunk in chunks(file, chunk_rows):
            try:
                response = c.post(
                    "/v1/leads/import",
                    content=chunk.content,
                    headers={"Content-Type": chunk.content_type},
                )
            except httpx.HTTPError as exc:
                raise fail(f"cannot reach the marketing service at {base}: {exc}") from exc
            if response.status_code != 200:
                problem = response.json() if response.content else {}
                raise fail(f"{response.status_code}: {problem.get('detail', response.text)}")
            result = response.json()
            for key in totals:
                totals[key] += result[key]
            errors.extend(
                (chunk.original_line.get(e["line"], e["line"]), e["field"], e["reason"])
                for e in result["errors"]
            )
            progress.advance(task, chunk.rows)
    console.print(
        f"{totals['rows']} rows: [green]{totals['created']} created[/], "
        f"{totals['duplicates']} duplicates, [red]{len(errors)} errors[/]"
    )
    if errors:
        table = Table("line", "field", "reason")
        for line, field_name, reason in sorted(errors)[:50]:
            table.add_row(str(line), field_name, reason)
        console.print(table)
        if len(errors) > 50:
            console.print(f"... and {len(errors) - 50} more")
        raise typer.Exit(1)
