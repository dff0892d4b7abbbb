"""The `baton` command: run the whole system, one service, mint tokens, replay, topics, schemas."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from baton.broker import EmbeddedBroker, port_open
from baton.kpi_commands import kpi_app, report_app
from baton.supervisor import Supervisor, log_tail
from shared.auth import ADMIN_SCOPE, mint_token, scopes_of
from shared.bus import broker_reachable, ensure_topics, list_topics
from shared.settings import ALL_TOPICS, SERVICES, BatonSettings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

ServiceArg = Annotated[str, typer.Argument(help=f"one of: {', '.join(SERVICES)}")]
S = TypeVar("S", bound=BatonSettings)
SignalHandler = Callable[[int, FrameType | None], Any] | int | None
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the exit to raise."""
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def known_service(name: str) -> str:
    """`name` if it is a service, else exit 2 listing the valid names."""
    if name not in SERVICES:
        raise fail(f"unknown service {name!r}; one of: {', '.join(SERVICES)}", 2)
    return name


def load_settings(cls: type[S], **values: Any) -> S:
    """`cls` read from the environment; an invalid value is a one-line error, not a traceback."""
    try:
        return cls(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid BATON_* setting: {problems}") from exc


def jwt_secret(settings: BatonSettings) -> str:
    """The HS256 secret of these settings, or a one-line error."""
    try:
        return settings.resolved_jwt_secret()
    except ValueError as exc:
        raise fail(str(exc)) from exc


def _port_taken(host: str, port: int) -> bool:
    """Whether something already listens where a server bound to `host:port` would."""
    return port_open("127.0.0.1" if host in ("0.0.0.0", "::", "") else host, port)


class _Stop(Exception):
    """SIGINT or SIGTERM arrived: shut down in order."""


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _on_stop_signals(handler: SignalHandler) -> dict[int, SignalHandler]:
    """Set `handler` for SIGINT and SIGTERM; return the previous handlers."""
    previous = {int(s): signal.getsignal(s) for s in STOP_SIGNALS}
    for s in STOP_SIGNALS:
        signal.signal(s, handler)
    return previous


@app.command()
def up(
    data_dir: Annotated[Path | None, typer.Option(help="default: BATON_DATA_DIR or ./var")] = None,
    services: Annotated[
        str | None, typer.Option(help="comma-separated subset to run, e.g. marketing,kpi")
    ] = None,
    kafka_port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="use (or start the embedded broker on) 127.0.0.1:PORT"),
    ] = None,
    broker_start: Annotated[
        bool,
        typer.Option(
            "--broker-start/--no-broker-start",
            help="start the embedded broker when none answers (or fail)",
        ),
    ] = True,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for /readyz")] = 60.0,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo", help="load the demo data set into a data dir without data"
        ),
    ] = True,
) -> None:
    """Start the broker (embedded unless one answers), the topics and the services."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # probing a broker is not an error
    ports = _service_ports(_service_names(services))
    overrides: dict[str, Any] = {"kafka_bootstrap": f"127.0.0.1:{kafka_port}"} if kafka_port else {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = load_settings(BatonSettings, **overrides)
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    supervisor: Supervisor | None = None
    previous = _on_stop_signals(_raise_stop)  # explicit: SIGINT may come in ignored (`cmd &`)
    try:
        broker = _find_or_start_broker(
            settings, explicit_port=kafka_port is not None, start=broker_start
        )
        if broker is not None:
            settings = settings.model_copy(
                update={"kafka_bootstrap": broker.bootstrap, "kafka_idempotence": False}
            )
        env = {
            **os.environ,
            "BATON_DATA_DIR": str(settings.data_dir),
            "BATON_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        }
        if broker is not None:
            env["BATON_KAFKA_IDEMPOTENCE"] = "false"  # Tansu rejects the idempotent producer
        supervisor = Supervisor(settings.data_dir, env, broker)
        _create_topics(settings)
        secret = jwt_secret(settings)  # made now, so that every service shares it
        supervisor.start(ports)
        _wait_ready(supervisor, ready_timeout)
        if demo:
            from baton.simulate.demo import load_demo

            load_demo(settings.data_dir, ports, secret, console)
        _print_summary(supervisor, settings.kafka_bootstrap, secret)
        for child in supervisor.watch():
            err.print(f"[red]{child.service} exited with code {child.process.returncode}[/]:")
            err.print(log_tail(child.log_file))
        raise fail("a service stopped; stopping the others")
    except _Stop:
        console.print("\nStopping the services, then the broker...")
    finally:
        _on_stop_signals(signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        if supervisor is not None:
            supervisor.stop()
            console.print("Stopped.")
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _service_names(services: str | None) -> list[str]:
    if services is None:
        return list(SERVICES)
    names = [known_service(n.strip()) for n in services.split(",") if n.strip()]
    if not names:
        raise fail(f"--services names none of: {', '.join(SERVICES)}", 2)
    return list(dict.fromkeys(names))


def _service_ports(names: list[str]) -> dict[str, int]:
    """Each service's port from its settings; refuses ports that are taken or shared."""
    from services import settings_class

    ports = {name: load_settings(settings_class(name)).port for name in names}
    shared = sorted({p for p in ports.values() if list(ports.values()).count(p) > 1})
    if shared:
        raise fail(f"several services are set to port {shared[0]}; see BATON_<SERVICE>_PORT")
    busy = [f"{name} ({port})" for name, port in ports.items() if port_open("127.0.0.1", port)]
    if busy:
        raise fail(
            f"port already in use: {', '.join(busy)}. Is Baton running already? "
            "Set BATON_<SERVICE>_PORT to move a service."
        )
    return ports


def _find_or_start_broker(
    settings: BatonSettings, *, explicit_port: bool, start: bool
) -> EmbeddedBroker | None:
    """None when a broker answers at the bootstrap; else the embedded broker, started."""
    bootstrap = settings.kafka_bootstrap
    if asyncio.run(broker_reachable(settings)):
        console.print(f"Using the broker at [bold]{bootstrap}[/]")
        return None
    if not start:
        raise fail(f"no broker answers at {bootstrap} (and --no-broker-start was given)")
    host, _, port_text = bootstrap.rpartition(":")
    port = int(port_text) if host in ("127.0.0.1", "localhost") and port_text.isdigit() else None
    if port is not None and port_open("127.0.0.1", port):
        if explicit_port:
            raise fail(f"port {port} is in use, and not by a Kafka broker")
        console.print(f"Port {port} is in use; the embedded broker takes a free one.")
        port = None
    log_file = settings.data_dir / "logs" / "broker.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(port=port, log_file=log_file)
    try:
        with console.status("Starting the embedded broker..."):
            broker.start()
    except RuntimeError as exc:
        raise fail(f"{exc}; see {log_file}") from exc
    console.print(f"Embedded broker (Tansu, memory only) at [bold]{broker.bootstrap}[/]")
    return broker


def _create_topics(settings: BatonSettings) -> None:
    try:
        asyncio.run(ensure_topics(settings, ALL_TOPICS))
    except KafkaError as exc:
        raise fail(f"cannot create the topics at {settings.kafka_bootstrap}: {exc}") from exc


def _wait_ready(supervisor: Supervisor, ready_timeout: float) -> None:
    with console.status("Starting the services...") as status:

        def progress(ready: int, total: int) -> None:
            status.update(f"Starting the services... {ready}/{total} ready")

        late = supervisor.wait_ready(ready_timeout, progress)
    for child in late:
        state = "exited" if child.process.poll() is not None else "is not ready"
        err.print(f"[red]{child.service} {state}[/]; the end of {child.log_file}:")
        err.print(log_tail(child.log_file))
    if late:
        raise fail(f"not every service became ready within {ready_timeout:g} s")


def _print_summary(supervisor: Supervisor, bootstrap: str, secret: str) -> None:
    table = Table(title="Baton is up")
    for column in ("service", "URL", "API docs"):
        table.add_column(column)
    for child in supervisor.children:
        table.add_row(child.service, child.url, f"{child.url}/docs")
    console.print(table)
    console.print(f"Broker: {bootstrap}    Logs: {supervisor.log_dir}")
    # Tokens go on lines of their own (not in the table) so that they copy in one piece.
    console.print("Tokens (12 h; `baton token --scope ...` mints more):")
    for child in supervisor.children:
        token = mint_token(secret, subject=f"{child.service}-team", scopes=scopes_of(child.service))
        console.print(f"  [bold]{child.service}[/]: {token}", soft_wrap=True)
    admin = mint_token(secret, subject="admin", scopes=[ADMIN_SCOPE])
    console.print(f"  [bold]admin[/]: {admin}", soft_wrap=True)
    kpi = next((child for child in supervisor.children if child.service == "kpi"), None)
    if kpi is not None:
        # The token rides in the fragment, which the browser never sends to a server.
        viewer = mint_token(secret, subject="dashboard", scopes=["kpi:read"])
        console.print(f"  [bold]dashboard[/]: {kpi.url}/dashboard#token={viewer}", soft_wrap=True)
    console.print("Press Ctrl-C to stop.")


@app.command()
def serve(
    service: ServiceArg,
    host: Annotated[str | None, typer.Option(help="default: BATON_HOST (127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="default: BATON_<SERVICE>_PORT")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64)] = 1,
) -> None:
    """Run one service under uvicorn (what a container runs)."""
    import uvicorn

    from baton.logs import uvicorn_log_config
    from services import settings_class

    settings = load_settings(settings_class(known_service(service)))
    bind_host, bind_port = host or settings.host, port or settings.port
    if _port_taken(bind_host, bind_port):
        raise fail(f"port {bind_port} is already in use (see --port, BATON_{service.upper()}_PORT)")
    uvicorn.run(
        f"services.{service}.app:app",
        host=bind_host,
        port=bind_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=uvicorn_log_config(service),
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
    secret = jwt_secret(load_settings(BatonSettings))
    scopes = [s for item in scope for s in item.replace(",", " ").split()]
    valid = {ADMIN_SCOPE} | {s for name in SERVICES for s in scopes_of(name)}
    unknown = sorted(set(scopes) - valid)
    if unknown:
        raise fail(f"unknown scope(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}", 2)
    typer.echo(mint_token(secret, subject=subject, scopes=scopes, ttl=timedelta(hours=ttl_hours)))


@app.command()
def simulate(
    leads: Annotated[int, typer.Option(min=1, max=100_000, help="leads to capture")] = 1_000,
    months: Annotated[float, typer.Option(min=0.1, max=60, help="over the last M months")] = 6.0,
    seed: Annotated[int, typer.Option(help="the same seed gives the same data")] = 1,
    scenario: Annotated[str, typer.Option(help="the-model or before-the-model")] = "the-model",
    host: Annotated[str, typer.Option(help="where the services listen")] = "127.0.0.1",
    url: Annotated[
        list[str] | None, typer.Option(help="SERVICE=URL for one service (repeatable)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="leads in flight")] = 16,
    token: Annotated[
        str | None, typer.Option(envvar="BATON_TOKEN", help="default: minted from the local secret")
    ] = None,
) -> None:
    """Drive a realistic funnel through the departments' public APIs, backdated over months."""
    from baton.simulate import SimulationError, local_urls, run_command, tokens_for
    from services import settings_class

    names = ("marketing", "inside_sales", "field_sales", "customer_success")
    ports = {name: load_settings(settings_class(name)).port for name in names}
    secret = None if token else jwt_secret(load_settings(BatonSettings))
    try:
        urls = local_urls(ports, host, url or [])
        code = run_command(
            console,
            urls=urls,
            tokens=tokens_for(secret, token),
            scenario=scenario,
            leads=leads,
            months=months,
            seed=seed,
            concurrency=concurrency,
        )
    except SimulationError as exc:
        raise fail(str(exc)) from exc
    raise typer.Exit(code)


@app.command()
def replay(
    service: ServiceArg,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 event time; without a zone it is UTC")
    ] = None,
) -> None:
    """Publish a service's outbox again (from `since`, by event time); consumers dedupe."""
    from sqlalchemy.exc import SQLAlchemyError

    from services import settings_class
    from shared.outbox import replay as replay_outbox

    start = _parse_since(since) if since else None
    settings = load_settings(settings_class(known_service(service)))
    # Replayed events are deduplicated by the consumers anyway; without idempotence the
    # replay also works against the embedded broker, which rejects the idempotent producer.
    settings = settings.model_copy(update={"kafka_idempotence": False})
    if not asyncio.run(broker_reachable(settings)):
        raise fail(f"no broker answers at {settings.kafka_bootstrap}")
    try:
        count = asyncio.run(replay_outbox(settings, start))
    except (KafkaError, OSError) as exc:
        raise fail(f"publishing to {settings.kafka_bootstrap} failed: {exc!r}") from exc
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc.__class__.__name__
        raise fail(f"cannot read the {service} outbox ({reason}); has {service} run here?") from exc
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
    settings = load_settings(BatonSettings)
    if not asyncio.run(broker_reachable(settings)):
        raise fail(f"no broker answers at {settings.kafka_bootstrap}")
    try:
        created = asyncio.run(ensure_topics(settings, ALL_TOPICS))
        described = asyncio.run(list_topics(settings))
    except KafkaError as exc:
        raise fail(f"the broker at {settings.kafka_bootstrap} refused: {exc!r}") from exc
    table = Table("topic", "partitions", "created now")
    for name, partitions in sorted(described.items()):
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


import_app = typer.Typer(help="Bulk imports through the public APIs.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(kpi_app, name="kpi")
app.add_typer(report_app, name="report")


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

    settings = load_settings(settings_class("marketing"))
    base = url or f"http://127.0.0.1:{settings.port}"
    bearer = token or mint_token(
        jwt_secret(settings), subject="baton-import", scopes=["marketing:write"]
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


def main() -> None:
    """The `baton` console script."""
    app()
