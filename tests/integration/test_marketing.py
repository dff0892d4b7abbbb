"""The marketing service on a real broker and both databases."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from baton.broker import EmbeddedBroker
from services.marketing.app import SPEC as MARKETING
from services.marketing.app import create_app
from shared.db import create_engine
from shared.events import (
    CONTENT_TYPE,
    CustomerFeedbackShared,
    LeadDisqualified,
    LeadRecycled,
    new_event,
)
from shared.migrations import alembic_config
from tests.helpers import (
    auth,
    eventually,
    make_settings,
    publish,
    read_events,
    serve,
    topic_tail,
)

WRITE = auth("marketing:write", "marketing:read")
ADMIN = auth("admin")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def marketing(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        "marketing",
        database_url=await database_url("marketing"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    async with serve(create_app(settings)) as client:
        yield client


def tail(bootstrap: str, topic: str) -> Any:
    return topic_tail(bootstrap, topic)


def new_lead(**overrides: Any) -> dict[str, Any]:
    values = {
        "email": f"lead-{uuid.uuid4().hex[:10]}@example.co.jp",
        "name": "Haruka Ito",
        "company": "Ito Logistics KK",
        "title": "Head of Operations",
        "source": "webinar",
        "occurred_at": T0.isoformat(),
    }
    return {**values, **overrides}


async def create_lead(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/leads", json=new_lead(**overrides), headers=WRITE)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def import_csv(client: httpx.AsyncClient, lines: Iterable[str]) -> httpx.Response:
    """POST the CSV of `lines` (the header first) to the import."""
    return await client.post(
        "/v1/leads/import",
        content="\n".join(lines).encode(),
        headers={**WRITE, "content-type": "text/csv"},
        timeout=120,
    )


async def activity(
    client: httpx.AsyncClient, lead_id: str, kind: str, at: datetime
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/leads/{lead_id}/activities",
        json={"type": kind, "occurred_at": at.isoformat()},
        headers=WRITE,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_crossing_the_line_emits_one_lead_qualified(
    marketing: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    async with tail(broker.bootstrap, "baton.marketing") as consumer:
        lead = await create_lead(marketing)  # fit: "head" +15
        steps = [("content_download", 1), ("webinar_attended", 2), ("pricing_page_view", 3)]
        results = [
            await activity(marketing, lead["id"], k, T0 + timedelta(days=d)) for k, d in steps
        ]
        assert [r["qualified"] for r in results] == [False, False, False]  # 75 points, 3 touches
        crossing = await activity(marketing, lead["id"], "email_click", T0 + timedelta(days=4))
        assert crossing["qualified"] is True
        assert crossing["score"] == 80
        after = await activity(marketing, lead["id"], "demo_request", T0 + timedelta(days=5))
        assert after["qualified"] is False  # an MQL is handed over once
        events = await read_events(
            consumer,
            "baton.LeadQualified.v1",
            *["baton.LeadEngaged.v1"] * 5,
            where=lambda e: e["data"].get("lead_id") == lead["id"],
        )
    mine = [(r, e) for r, e in events if e["data"]["lead_id"] == lead["id"]]
    types = [e["type"] for _, e in mine]
    assert types.count("baton.LeadQualified.v1") == 1
    assert types.count("baton.LeadEngaged.v1") == 5
    record, mql = next((r, e) for r, e in mine if e["type"] == "baton.LeadQualified.v1")
    assert record.key == lead["id"].encode()
    assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
    assert mql["specversion"] == "1.0"
    assert mql["source"] == "/services/marketing"
    assert mql["subject"] == mql["partitionkey"] == mql["correlationid"] == lead["id"]
    assert mql["datacontenttype"] == "application/json"
    assert datetime.fromisoformat(mql["time"]) == T0 + timedelta(days=4)  # event time
    uuid.UUID(mql["id"])
    assert mql["data"]["score"] == 80
    assert mql["data"]["touches"] == 4
    assert mql["data"]["rule"] == {"min_score": 80, "min_touches": 3}
    assert mql["data"]["email"] == lead["email"]

    detail = (await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
    assert detail["status"] == "mql"
    assert detail["score_breakdown"]["fit_rules"] == {"title contains 'head'": 15}
    assert detail["score_breakdown"]["points_by_activity"]["webinar_attended"] == 25
    kinds = [(e["kind"], e["what"]) for e in detail["timeline"]]
    assert kinds[0] == ("status", "new")
    assert ("status", "mql") in kinds
    assert sum(1 for k, _ in kinds if k == "activity") == 5


async def test_recycled_lead_can_qualify_again(
    marketing: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    lead = await create_lead(marketing, title="Engineer")  # no fit points
    for day, kind in enumerate(["demo_request", "webinar_attended", "content_download"]):
        last = await activity(marketing, lead["id"], kind, T0 + timedelta(days=day))
    assert last["qualified"] is True
    recycled = new_event(
        LeadRecycled(lead_id=uuid.UUID(lead["id"]), reason="no budget this year"),
        time=T0 + timedelta(days=10),
    )
    await publish(broker.bootstrap, "baton.inside_sales", recycled)

    async def is_recycled() -> bool:
        got = await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)
        return bool(got.json()["status"] == "recycled")

    await eventually(is_recycled)
    detail = (await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
    assert detail["score"] == 0 and detail["touches"] == 0  # engagement starts over
    async with tail(broker.bootstrap, "baton.marketing") as consumer:
        again = [
            await activity(marketing, lead["id"], k, T0 + timedelta(days=20 + n))
            for n, k in enumerate(["demo_request", "webinar_attended", "content_download"])
        ]
        events = await read_events(
            consumer,
            "baton.LeadQualified.v1",
            where=lambda e: (
                e["subject"] == lead["id"]
                and datetime.fromisoformat(e["time"]) >= T0 + timedelta(days=20)
            ),
        )
    assert [a["qualified"] for a in again] == [False, False, True]
    # (the embedded broker's "latest" offset can re-deliver the batch before it: filter by time)
    qualified = [
        e
        for _, e in events
        if e["type"] == "baton.LeadQualified.v1"
        and e["subject"] == lead["id"]
        and datetime.fromisoformat(e["time"]) >= T0 + timedelta(days=20)
    ]
    assert len(qualified) == 1, qualified


async def test_disqualified_lead_never_qualifies(
    marketing: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    lead = await create_lead(marketing, title="Engineer")
    verdict = new_event(
        LeadDisqualified(lead_id=uuid.UUID(lead["id"]), reason="competitor"),
        time=T0 + timedelta(hours=1),
    )
    await publish(broker.bootstrap, "baton.inside_sales", verdict)

    async def is_disqualified() -> bool:
        got = await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)
        return bool(got.json()["status"] == "disqualified")

    await eventually(is_disqualified)
    kinds = ["demo_request", "webinar_attended", "content_download", "pricing_page_view"]
    results = [
        await activity(marketing, lead["id"], k, T0 + timedelta(days=n + 1))
        for n, k in enumerate(kinds)
    ]
    assert results[-1]["score"] >= 80
    assert not any(r["qualified"] for r in results)


async def test_import_reports_exactly_the_bad_rows(marketing: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = ["email,name,company,title,source"]
    bad_lines: dict[int, str] = {}
    for n in range(10_000):
        line_number = n + 2
        if n % 400 == 7:
            bad_lines[line_number] = "email"
            lines.append(f"not-an-email-{n},Name {n},Company {n},CTO,seo")
        elif n % 400 == 99:
            bad_lines[line_number] = "source"
            lines.append(f"{tag}-{n}@example.jp,Name {n},Company {n},CTO,television")
        else:
            lines.append(f"{tag}-{n}@example.jp,Name {n},Company {n},CTO,seo")
    lines.append(f"{tag}-0@example.jp,Twin,Company,,seo")  # repeats line 2: a duplicate
    response = await import_csv(marketing, lines)
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(bad_lines) == 50
    assert {e["line"]: e["field"] for e in result["errors"]} == bad_lines
    assert result["rows"] == 10_001
    assert result["created"] == 10_000 - 50
    assert result["duplicates"] == 1
    again = await import_csv(marketing, lines[:11])
    assert again.json()["created"] == 0
    assert again.json()["duplicates"] == 9  # the ten first rows but the bad one on line 9
    assert [e["line"] for e in again.json()["errors"]] == [9]


async def test_text_with_a_nul_is_refused_naming_where(marketing: httpx.AsyncClient) -> None:
    """PostgreSQL cannot store U+0000 in text: a 422 naming the field, on both databases, and
    nothing stored; a backslash before "u0000" is plain text."""
    refused = await marketing.post("/v1/leads", json=new_lead(name="Ito\x00"), headers=WRITE)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [
        {"name": "name", "reason": "must not contain the NUL character (U+0000)"}
    ]
    nested = await marketing.post(
        "/v1/campaigns", json={"name": "Spring", "channel": "ads", "x\x00": 1}, headers=ADMIN
    )
    assert nested.status_code == 422
    assert nested.json()["errors"] == [  # a key holding it: named as it is (JSON escapes it)
        {"name": "x\x00", "reason": "must not contain the NUL character (U+0000)"}
    ]
    in_query = await marketing.get("/v1/leads", params={"email": "a\x00@x.jp"}, headers=WRITE)
    assert in_query.status_code == 422, in_query.text
    assert in_query.json()["errors"][0]["name"] == "email"
    in_path = await marketing.get("/v1/leads/a%00b", headers=WRITE)
    assert in_path.status_code == 422, in_path.text
    backslash = new_lead(name="Ito \\u0000")
    accepted = await marketing.post("/v1/leads", json=backslash, headers=WRITE)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["name"] == "Ito \\u0000"
    rows = "email,name,company,source\nn1@x.jp,A\x00B,C,seo\nn2@x.jp,AB,C,seo\n"
    imported = await marketing.post(
        "/v1/leads/import", content=rows.encode(), headers={**WRITE, "content-type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    assert imported.json()["created"] == 1
    assert imported.json()["errors"] == [
        {"line": 2, "field": "name", "reason": "must not contain the NUL character (U+0000)"}
    ]


async def test_import_skips_emails_already_known(marketing: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    known = await create_lead(marketing, email=f"{tag}-2100@example.jp", name="First seen")
    campaign = (
        await marketing.post(
            "/v1/campaigns", json={"name": "Imported", "channel": "ads"}, headers=WRITE
        )
    ).json()
    lines = ["email,name,company,title,source,campaign_id"]
    for n in range(2_500):  # two chunks; the known email is in the second
        lines.append(f"{tag}-{n}@example.jp,Name {n},Company {n},CTO,seo,{campaign['id']}")
    lines.append(f"{tag}-5@example.jp,Twin,Company,,seo,")  # repeats a row of the file
    response = await import_csv(marketing, lines)
    assert response.status_code == 200, response.text
    assert response.json() == {"rows": 2_501, "created": 2_499, "duplicates": 2, "errors": []}
    detail = (await marketing.get(f"/v1/leads/{known['id']}", headers=WRITE)).json()
    assert detail["name"] == "First seen"
    assert [e["what"] for e in detail["timeline"]] == ["new"]
    funnel = (await marketing.get(f"/v1/campaigns/{campaign['id']}", headers=WRITE)).json()
    assert funnel["leads"] == 2_499


REFUSE_POISON = {
    "postgresql": [
        """CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.email LIKE 'poison-%' THEN RAISE EXCEPTION 'refused by the test'; END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON leads"
        " FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ],
    "sqlite": [
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON leads WHEN NEW.email LIKE 'poison-%'"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
}


async def test_an_import_failing_midway_leaves_whole_chunks_each_with_its_events(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> None:
    # Its chunks are written side by side on PostgreSQL: the one refused (the database's own
    # error, not the input's) cancels those being written, and none is left half written.
    url = await database_url("marketing")
    settings = make_settings(
        "marketing", database_url=url, bootstrap=broker.bootstrap, data_dir=tmp_path
    )
    async with serve(create_app(settings)) as marketing:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                for statement in REFUSE_POISON[engine.dialect.name]:
                    await connection.execute(text(statement))
            tag = uuid.uuid4().hex[:8]
            lines = ["email,name,company,source"]
            lines += [f"{tag}-{n}@example.jp,Name {n},Company {n},seo" for n in range(11_000)]
            lines[5_000] = f"poison-{tag}@example.jp,Poison,Company,seo"  # in the third chunk
            failed = await import_csv(marketing, lines)
            assert failed.status_code == 500, failed.text
            assert failed.headers["content-type"] == "application/problem+json"
            async with engine.connect() as connection:
                emails = (await connection.scalars(text("SELECT email FROM leads"))).all()
                events = await connection.scalar(
                    text("SELECT count(*) FROM outbox WHERE event_type = 'baton.LeadCaptured.v1'")
                )
            leads = len(emails)
            assert leads == events  # a lead and its event or neither
            # Whole chunks (rows n // 2,000 of the file; the last has 1,000), not the third.
            rows = [int(email.split("@")[0].rsplit("-", 1)[1]) for email in emails]
            chunks = Counter(row // 2_000 for row in rows)
            assert all(count == min(2_000, 11_000 - 2_000 * c) for c, count in chunks.items())
            assert 2 not in chunks
            again = await import_csv(marketing, [line for line in lines if "poison" not in line])
            assert again.status_code == 200, again.text
            assert again.json()["created"] == 10_999 - leads
        finally:
            await engine.dispose()


async def test_reads_on_sqlite_do_not_wait_for_a_writer(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    path = tmp_path / "marketing.db"
    url = f"sqlite+aiosqlite:///{path}"
    settings = make_settings(
        "marketing", database_url=url, bootstrap=broker.bootstrap, data_dir=tmp_path
    )
    async with serve(create_app(settings)) as marketing:
        # A writer of its own, off the event loop (which serves the service meanwhile).
        writer = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        try:
            # It holds the write lock, as a long import would.
            await asyncio.to_thread(writer.execute, "BEGIN IMMEDIATE")
            started = time.perf_counter()
            listed = await marketing.get("/v1/leads", headers=WRITE, timeout=20)
            assert listed.status_code == 200, listed.text
            unknown = await marketing.get(f"/v1/leads/{uuid.uuid4()}", headers=WRITE, timeout=20)
            assert unknown.status_code == 404, unknown.text
            assert time.perf_counter() - started < 5  # the busy timeout is 30 s
        finally:
            await asyncio.to_thread(writer.execute, "ROLLBACK")
            writer.close()
        await create_lead(marketing)  # and writes go on once the writer is done


async def test_concurrent_twins_get_one_lead_and_clear_409s(marketing: httpx.AsyncClient) -> None:
    payload = new_lead()
    responses = await asyncio.gather(
        *(marketing.post("/v1/leads", json=payload, headers=WRITE) for _ in range(8))
    )
    created = [r.json() for r in responses if r.status_code == 201]
    assert len(created) == 1
    conflicts = [r for r in responses if r.status_code != 201]
    assert {r.status_code for r in conflicts} == {409}
    assert {r.json()["existing_id"] for r in conflicts} == {created[0]["id"]}
    assert {r.json()["errors"][0]["name"] for r in conflicts} == {"email"}


async def test_a_burst_of_captures_answers_each_request_for_its_own_lead(
    marketing: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    """Captures in flight together are committed together; each still gets its own answer."""
    campaign = await marketing.post(
        "/v1/campaigns", json={"name": "Burst", "channel": "ads"}, headers=WRITE
    )
    known = await create_lead(marketing)
    bodies = [
        new_lead(name=f"Lead {n}", campaign_id=campaign.json()["id"] if n % 3 else None)
        for n in range(40)
    ]
    bodies[7] = new_lead(name="Unknown campaign", campaign_id=str(uuid.uuid4()))
    bodies[20] = new_lead(name="Known email", email=known["email"])
    bodies[30] = bodies[31] = new_lead(name="Twin")
    async with tail(broker.bootstrap, "baton.marketing") as consumer:
        responses = await asyncio.gather(
            *(marketing.post("/v1/leads", json=body, headers=WRITE) for body in bodies)
        )
        ids = {r.json()["id"] for r in responses if r.status_code == 201}
        events = await read_events(
            consumer,
            *["baton.LeadCaptured.v1"] * len(ids),
            where=lambda e: e["data"].get("lead_id") in ids,
        )
    statuses = [r.status_code for r in responses]
    assert statuses[7] == 422
    assert responses[7].json()["errors"] == [{"name": "campaign_id", "reason": "unknown campaign"}]
    assert statuses[20] == 409
    assert responses[20].json()["existing_id"] == known["id"]
    assert sorted(statuses[30:32]) == [201, 409]
    twin = responses[30] if statuses[30] == 201 else responses[31]
    assert {r.json()["existing_id"] for r in responses[30:32] if r.status_code == 409} == {
        twin.json()["id"]
    }
    created = {n: r.json() for n, r in enumerate(responses) if r.status_code == 201}
    assert len(created) == 37  # 40, less the unknown campaign, the known email and a twin
    for n, lead in created.items():
        assert (lead["email"], lead["name"]) == (bodies[n]["email"], bodies[n]["name"])
        assert lead["campaign_id"] == bodies[n].get("campaign_id")
        assert responses[n].headers["location"] == f"/v1/leads/{lead['id']}"
    captured = Counter(
        e["data"]["lead_id"] for _, e in events if e["type"] == "baton.LeadCaptured.v1"
    )
    assert {lead["id"]: captured[lead["id"]] for lead in created.values()} == {
        lead["id"]: 1 for lead in created.values()
    }
    for lead in created.values():
        stored = await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)
        assert stored.json()["name"] == lead["name"]
    metrics = (await marketing.get("/metrics")).text
    groups = {
        line.split("{")[0].removeprefix("baton_group_commit_items_"): float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("baton_group_commit_items_")
        and 'group="marketing.captures"' in line
        and ("_count" in line or 'le="1.0"' in line)
    }
    assert groups["bucket"] < groups["count"]  # some transaction held more than one capture


async def test_import_rejects_files_it_cannot_read(marketing: httpx.AsyncClient) -> None:
    csv_headers = {**WRITE, "content-type": "text/csv"}
    no_email = await marketing.post(
        "/v1/leads/import", content=b"name,company\nA,B", headers=csv_headers
    )
    assert no_email.status_code == 422
    assert no_email.json()["errors"][0]["name"] == "header"
    binary = await marketing.post("/v1/leads/import", content=b"\xff\xfe", headers=csv_headers)
    assert binary.status_code == 422
    pdf = await marketing.post(
        "/v1/leads/import", content=b"%PDF", headers={**WRITE, "content-type": "application/pdf"}
    )
    assert pdf.status_code == 415
    jsonl = (
        b'{"email":"j1@example.jp","name":"J","company":"C","source":"ads"}\n[1]\n\n{"email":"x"}'
    )
    lines = await marketing.post(
        "/v1/leads/import", content=jsonl, headers={**WRITE, "content-type": "application/x-ndjson"}
    )
    body = lines.json()
    assert body["created"] == 1
    assert [(e["line"], e["field"]) for e in body["errors"]] == [(2, "row"), (4, "email")]


async def test_a_large_import_does_not_hold_the_event_loop(marketing: httpx.AsyncClient) -> None:
    tag = uuid.uuid4().hex[:8]
    rows = "\n".join(f"{tag}-{n}@example.jp,N{n},C{n},,ads" for n in range(30_000))
    content = f"email,name,company,title,source\n{rows}".encode()
    importing = asyncio.create_task(
        marketing.post(
            "/v1/leads/import",
            content=content,
            headers={**WRITE, "content-type": "text/csv"},
            timeout=300,
        )
    )
    answered = 0
    while not importing.done():
        started = time.monotonic()
        assert (await marketing.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 2.0
        answered += 1
        await asyncio.sleep(0.05)
    assert (await importing).json()["created"] == 30_000
    assert answered >= 3, "the import finished before it could be observed"


async def test_campaign_numbers(marketing: httpx.AsyncClient) -> None:
    created = await marketing.post(
        "/v1/campaigns", json={"name": "Spring webinar", "channel": "webinar"}, headers=WRITE
    )
    assert created.status_code == 201
    campaign = created.json()
    assert campaign["cost_per_lead"] == {} and campaign["leads"] == 0
    cost = {"currency": "JPY", "period_start": "2026-03-01", "period_end": "2026-03-31"}
    assert (
        await marketing.post(
            f"/v1/campaigns/{campaign['id']}/costs", json={**cost, "amount": 300_000}, headers=WRITE
        )
    ).status_code == 201
    negative = await marketing.post(
        f"/v1/campaigns/{campaign['id']}/costs", json={**cost, "amount": -1}, headers=WRITE
    )
    assert negative.status_code == 422
    assert negative.json()["errors"][0]["name"] == "amount"
    backwards = await marketing.post(
        f"/v1/campaigns/{campaign['id']}/costs",
        json={**cost, "amount": 1, "period_end": "2026-02-01"},
        headers=WRITE,
    )
    assert backwards.status_code == 422
    nowhere = await marketing.post(
        f"/v1/campaigns/{uuid.uuid4()}/costs", json={**cost, "amount": 1}, headers=WRITE
    )
    assert nowhere.status_code == 404
    leads = [await create_lead(marketing, campaign_id=campaign["id"]) for _ in range(3)]
    for day, kind in enumerate(["demo_request", "webinar_attended", "content_download"]):
        await activity(marketing, leads[0]["id"], kind, T0 + timedelta(days=day))
    numbers = (await marketing.get(f"/v1/campaigns/{campaign['id']}", headers=WRITE)).json()
    assert (numbers["leads"], numbers["mqls"]) == (3, 1)
    assert numbers["cost"] == {"JPY": 300_000}
    assert numbers["cost_per_lead"] == {"JPY": 100_000}
    assert numbers["cost_per_mql"] == {"JPY": 300_000}
    unknown = await marketing.post(
        "/v1/leads", json=new_lead(campaign_id=str(uuid.uuid4())), headers=WRITE
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["name"] == "campaign_id"


async def test_bad_activity_input(marketing: httpx.AsyncClient) -> None:
    lead = await create_lead(marketing)
    wrong_type = await marketing.post(
        f"/v1/leads/{lead['id']}/activities", json={"type": "tweet"}, headers=WRITE
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["name"] == "type"
    naive = await marketing.post(
        f"/v1/leads/{lead['id']}/activities",
        json={"type": "page_view", "occurred_at": "2026-03-02T09:00:00"},
        headers=WRITE,
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["name"] == "occurred_at"
    nobody = await marketing.post(
        f"/v1/leads/{uuid.uuid4()}/activities", json={"type": "page_view"}, headers=WRITE
    )
    assert nobody.status_code == 404
    detail = (await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
    assert detail["timeline"] == [{**detail["timeline"][0]}]  # only "new": nothing half-written


async def test_list_filters_and_pages(marketing: httpx.AsyncClient) -> None:
    company = f"Pager {uuid.uuid4().hex[:6]}"
    made = [
        await create_lead(
            marketing, company=company, occurred_at=(T0 + timedelta(hours=n)).isoformat()
        )
        for n in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": company.lower(), "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await marketing.get("/v1/leads", params=params, headers=WRITE)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [lead["id"] for lead in reversed(made)]
    by_score = await marketing.get(
        "/v1/leads", params={"q": company, "min_score": 1000}, headers=WRITE
    )
    assert by_score.json()["items"] == []
    bad = await marketing.get("/v1/leads", params={"cursor": "garbage"}, headers=WRITE)
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["name"] == "cursor"


async def test_scoring_model_is_admin_only_and_versioned(marketing: httpx.AsyncClient) -> None:
    current = (await marketing.get("/v1/scoring-model", headers=WRITE)).json()
    body = {k: current[k] for k in ("activity_points", "fit_rules", "mql_min_score")}
    body["mql_min_score"] = 60
    assert (await marketing.put("/v1/scoring-model", json=body, headers=WRITE)).status_code == 403
    first = await marketing.put("/v1/scoring-model", json=body, headers=ADMIN)
    assert first.status_code == 200, first.text
    second = await marketing.put("/v1/scoring-model", json=body, headers=ADMIN)
    assert second.json()["version"] == first.json()["version"] + 1
    assert second.json()["changed_by"] == "tests"
    bad = await marketing.put(
        "/v1/scoring-model",
        json={**body, "activity_points": {"tweet": 5}},
        headers=ADMIN,
    )
    assert bad.status_code == 422
    lead = await create_lead(marketing, title="Engineer")
    for day, kind in enumerate(["demo_request", "content_download", "email_click"]):
        last = await activity(marketing, lead["id"], kind, T0 + timedelta(days=day))
    assert last["qualified"] is True  # 60 now suffices
    detail = (await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
    assert detail["score_breakdown"]["model_version"] == second.json()["version"]


async def test_a_scoring_model_change_scores_the_next_lead_in_every_process(
    broker: EmbeddedBroker, topics: Any, database_url: Any, tmp_path: Path
) -> None:
    # Two apps on one database stand for two processes (replicas) of the service.
    settings = make_settings(
        "marketing",
        database_url=await database_url("marketing"),
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    async with serve(create_app(settings)) as one, serve(create_app(settings)) as other:
        model = (await one.get("/v1/scoring-model", headers=WRITE)).json()
        body = {k: model[k] for k in ("activity_points", "fit_rules", "mql_min_score")}

        async def change(client: httpx.AsyncClient, points: int) -> int:
            rules = [{"field": "title", "contains": "engineer", "points": points}]
            response = await client.put(
                "/v1/scoring-model", json={**body, "fit_rules": rules}, headers=ADMIN
            )
            assert response.status_code == 200, response.text
            version: int = response.json()["version"]
            return version

        async def score(client: httpx.AsyncClient) -> int:
            lead = await create_lead(client, title="Engineer")
            detail = (await client.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
            assert detail["score"] == lead["score"]
            assert detail["score_breakdown"]["model_version"] == version
            result: int = lead["score"]
            return result

        version = 0
        assert await score(one) == await score(other) == 0
        version = await change(one, 50)
        assert await score(one) == await score(other) == 50  # both keep this version now
        version = await change(other, 70)
        assert await score(one) == await score(other) == 70
        version = await change(other, 70 - 100)
        assert await score(other) == await score(one) == -30


async def test_customer_feedback_reaches_the_lead(
    marketing: httpx.AsyncClient, broker: EmbeddedBroker
) -> None:
    lead = await create_lead(marketing)
    text = f"Halved inspection time ({uuid.uuid4().hex[:6]})"
    feedback = new_event(
        CustomerFeedbackShared(account_id=uuid.uuid4(), kind="case_study", text=text),
        correlation_id=lead["id"],
        time=T0 + timedelta(days=200),
    )
    await publish(broker.bootstrap, "baton.customer_success", feedback)

    async def shown() -> bool:
        got = (await marketing.get(f"/v1/leads/{lead['id']}", headers=WRITE)).json()
        return any(f["text"] == text for f in got["feedback"])

    await eventually(shown)
    stories = (
        await marketing.get("/v1/feedback", params={"kind": "case_study"}, headers=WRITE)
    ).json()
    assert any(f["text"] == text and f["lead_id"] == lead["id"] for f in stories)


async def test_baton_import_leads_command(marketing: httpx.AsyncClient, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from baton.cli import app
    from tests.helpers import token

    tag = uuid.uuid4().hex[:8]
    rows = [f"{tag}-{n}@example.jp,N{n},C{n},seo" for n in range(25)]
    rows[12] = f"{tag}-bad,N,C,seo"
    path = tmp_path / "leads.csv"
    path.write_text("email,name,company,source\n" + "\n".join(rows) + "\n")
    args = [
        "import", "leads", str(path), "--url", str(marketing.base_url),
        "--token", token("marketing:write"), "--chunk-rows", "10",
    ]  # fmt: skip
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 1, result.output  # one bad row
    assert "25 rows: 24 created, 0 duplicates, 1 errors" in result.output
    assert "14 " in result.output and "email" in result.output  # line 14 of the file


async def test_migration_0003_leaves_the_capture_to_open_the_timeline(database_url: Any) -> None:
    """Stored "new" rows go (the timeline now takes the capture from the lead), and come back on
    downgrade."""
    engine = create_engine(await database_url("marketing"))
    config = alembic_config(
        "marketing", MARKETING.migrations, engine.url.render_as_string(hide_password=False)
    )

    def migrate(connection: Any, step: Any, revision: str) -> None:
        config.attributes["connection"] = connection
        step(config, revision)

    statuses = text("SELECT lead_id, status FROM lead_status_changes ORDER BY id")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate, command.upgrade, "0002")
            await connection.execute(
                text(
                    "INSERT INTO leads (id, email, name, company, source, status, captured_at, "
                    "score, touches, times_qualified) "
                    "VALUES ('l1', 'a@x.jp', 'A', 'C', 'seo', 'mql', :at, 0, 0, 1)"
                ),
                {"at": T0},
            )
            await connection.execute(
                text(
                    "INSERT INTO lead_status_changes (lead_id, status, occurred_at) "
                    "VALUES ('l1', 'new', :at), ('l1', 'mql', :later)"
                ),
                {"at": T0, "later": T0 + timedelta(days=1)},
            )
            await connection.run_sync(migrate, command.upgrade, "0003")
            assert (await connection.execute(statuses)).all() == [("l1", "mql")]
            await connection.run_sync(migrate, command.downgrade, "0002")
            assert sorted((await connection.execute(statuses)).all()) == [
                ("l1", "mql"),
                ("l1", "new"),
            ]
    finally:
        await engine.dispose()
