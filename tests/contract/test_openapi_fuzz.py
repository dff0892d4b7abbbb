"""Contract fuzzing: schemathesis drives every service's OpenAPI schema with valid tokens.

Each service runs for real (uvicorn, its own SQLite database, the embedded broker) in a thread
of its own; generated requests must never get a 5xx, and every response must match what the
schema declares (status code, content type, headers, body). The examples are bounded (12 per
operation, the same on every run; BATON_FUZZ_EXAMPLES=200 for a deeper run), so the module
takes about half a minute.
"""

from __future__ import annotations

import importlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
import uvicorn
from schemathesis import Case, checks

from baton.broker import EmbeddedBroker, free_port
from shared.settings import SERVICES
from tests.helpers import auth, make_settings

EXAMPLES = int(os.environ.get("BATON_FUZZ_EXAMPLES", "12"))  # per operation
ADMIN = auth("admin")  # every scope: the fuzzer should reach every handler, not the 403


def _start(
    service: str, broker: EmbeddedBroker, data_dir: Path
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """`service` under uvicorn on a free port, in a daemon thread with an event loop of its own."""
    settings = make_settings(
        service,
        database_url=f"sqlite+aiosqlite:///{data_dir / service}.db",
        bootstrap=broker.bootstrap,
        data_dir=data_dir,
    )
    port = free_port()
    app = _create_app(service)(settings)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="error")
    )
    thread = threading.Thread(target=server.run, name=f"fuzz-{service}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{service} did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _app_schema(service: str) -> schemathesis.BaseSchema:
    """The OpenAPI schema the service's app publishes (built without I/O, at collection)."""
    settings = make_settings(
        service, database_url="sqlite+aiosqlite://", bootstrap="127.0.0.1:1", data_dir=Path()
    )
    return schemathesis.openapi.from_dict(_create_app(service)(settings).openapi())


def _create_app(service: str) -> Any:
    return importlib.import_module(f"services.{service}.app").create_app


@pytest.fixture(scope="module")
def base_urls(
    broker: EmbeddedBroker, topics: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Every service running, on its own SQLite database; their base URLs."""
    running, urls = [], {}
    try:
        for service in SERVICES:
            data_dir = tmp_path_factory.mktemp(f"fuzz-{service}")
            server, thread, urls[service] = _start(service, broker, data_dir)
            running.append((server, thread))
        yield urls
    finally:
        for server, _ in running:
            server.should_exit = True
        for _, thread in running:
            thread.join(30)


FUZZ = hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
)


# No 5xx, and every response as the schema declares it. (Whether each schema-valid request is
# accepted, or each invalid one rejected, is for the services' own tests: the fuzzer's idea of
# "valid" knows nothing of unknown ids, cursors or date ranges.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def check(case: Case, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=ADMIN, checks=CHECKS, timeout=30)


marketing = _app_schema("marketing")
inside_sales = _app_schema("inside_sales")
field_sales = _app_schema("field_sales")
customer_success = _app_schema("customer_success")
kpi = _app_schema("kpi")


@marketing.parametrize()
@FUZZ
def test_marketing_api(case: Case, base_urls: dict[str, str]) -> None:
    check(case, base_urls["marketing"])


@inside_sales.parametrize()
@FUZZ
def test_inside_sales_api(case: Case, base_urls: dict[str, str]) -> None:
    check(case, base_urls["inside_sales"])


@field_sales.parametrize()
@FUZZ
def test_field_sales_api(case: Case, base_urls: dict[str, str]) -> None:
    check(case, base_urls["field_sales"])


@customer_success.parametrize()
@FUZZ
def test_customer_success_api(case: Case, base_urls: dict[str, str]) -> None:
    check(case, base_urls["customer_success"])


@kpi.parametrize()
@FUZZ
def test_kpi_api(case: Case, base_urls: dict[str, str]) -> None:
    check(case, base_urls["kpi"])
