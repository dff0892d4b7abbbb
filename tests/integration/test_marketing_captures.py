"""A group of captures in one trip (`services.marketing.captures`), on both databases: the leads
and their events commit together or not at all, only with the scoring model they were scored
with, and a lead left out takes its event with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.marketing import service
from services.marketing.app import SPEC as MARKETING
from services.marketing.captures import CaptureWriter
from services.marketing.models import Campaign, Lead, ScoringModelVersion
from services.marketing.schemas import LeadCreate
from shared.ids import new_id
from shared.outbox import Outbox, OutboxRelay, OutboxRow
from tests.helpers import make_settings, migrated_sessions

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OUTBOX = Outbox("baton.marketing", 8)


@pytest.fixture
async def sessions(database_url: Any) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = await database_url("marketing")
    async with migrated_sessions(url, "marketing", MARKETING.migrations) as made:
        yield made


def chunk(*bodies: LeadCreate) -> service.ImportChunk:
    return service.prepare_chunk(list(bodies), service.DEFAULT_MODEL, T0, OUTBOX)


def body(email: str, campaign_id: str | None = None) -> LeadCreate:
    return LeadCreate.model_validate(
        {"email": email, "name": "N", "company": "C", "source": "seo", "campaign_id": campaign_id}
    )


async def stored(sessions: async_sessionmaker[AsyncSession]) -> tuple[set[str], list[str]]:
    """(the leads' emails, the events' keys in the order they were added)."""
    async with sessions() as session:
        emails = set((await session.scalars(select(Lead.email))).all())
        keys = list((await session.scalars(select(OutboxRow.key).order_by(OutboxRow.id))).all())
    return emails, keys


async def test_a_group_commits_its_leads_and_their_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    group = chunk(body("a@x.jp"), body("b@x.jp"))
    written = await CaptureWriter(sessions).write(group.leads, group.events, 0)
    assert written.version == 0
    assert sorted(written.inserted) == sorted(lead["id"] for lead in group.leads)
    emails, keys = await stored(sessions)
    assert emails == {"a@x.jp", "b@x.jp"}
    assert keys == [lead["id"] for lead in group.leads]
    async with sessions() as session:
        lead = await session.get(Lead, group.leads[0]["id"])
    assert lead is not None
    assert (lead.captured_at, lead.status, lead.score) == (T0, "new", group.leads[0]["score"])


async def test_leads_scored_with_another_version_than_the_one_in_force_are_not_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = CaptureWriter(sessions)
    group = chunk(body("a@x.jp"))
    written = await writer.write(group.leads, group.events, 3)
    assert (written.version, written.inserted) == (0, [])
    async with sessions() as session, session.begin():
        session.add(ScoringModelVersion(version=1, body={}, changed_by="t", changed_at=T0))
    written = await writer.write(group.leads, group.events, 0)
    assert (written.version, written.inserted) == (1, [])
    assert await stored(sessions) == (set(), [])
    written = await writer.write(group.leads, group.events, 1)
    assert (written.version, written.inserted) == (1, [group.leads[0]["id"]])


async def test_known_emails_twins_and_unknown_campaigns_are_left_out_with_their_events(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    campaign = new_id()
    async with sessions() as session, session.begin():
        session.add(Campaign(id=campaign, name="C", channel="ads", created_at=T0))
    writer = CaptureWriter(sessions)
    first = chunk(body("known@x.jp"))
    await writer.write(first.leads, first.events, 0)
    group = chunk(
        body("known@x.jp"),
        body("twin@x.jp"),
        body("twin@x.jp"),
        body("lost@x.jp", campaign_id=new_id()),
        body("kept@x.jp", campaign_id=campaign),
    )
    written = await writer.write(group.leads, group.events, 0)
    ids = [lead["id"] for lead in group.leads]
    assert written.inserted == [ids[1], ids[4]]
    emails, keys = await stored(sessions)
    assert emails == {"known@x.jp", "twin@x.jp", "kept@x.jp"}
    assert keys == [first.leads[0]["id"], ids[1], ids[4]]


async def test_a_group_failing_midway_writes_nothing_and_the_next_one_is_written(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    writer = CaptureWriter(sessions)
    first = chunk(body("a@x.jp"))
    await writer.write(first.leads, first.events, 0)
    group = chunk(body("b@x.jp"), body("c@x.jp"))
    group.events[1]["event_id"] = first.events[0]["event_id"]  # unique: the insert fails
    with pytest.raises(Exception, match=r"(?i)unique"):
        await writer.write(group.leads, group.events, 0)
    assert await stored(sessions) == ({"a@x.jp"}, [first.leads[0]["id"]])
    again = chunk(body("b@x.jp"), body("c@x.jp"))
    written = await writer.write(again.leads, again.events, 0)
    assert len(written.inserted) == 2
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Lead)) == 3


async def test_a_group_that_wrote_events_wakes_the_relay(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    class Relay(OutboxRelay):
        woken = 0

        def wake(self) -> None:
            self.woken += 1

    settings = make_settings(
        "marketing", database_url="sqlite://", bootstrap="127.0.0.1:1", data_dir=tmp_path
    )
    relay = Relay(settings, sessions)  # not started: it only listens
    writer = CaptureWriter(sessions)
    group = chunk(body("a@x.jp"))
    await writer.write(group.leads, group.events, 0)
    assert relay.woken == 1
    await writer.write(group.leads, group.events, 0)  # nothing new: the email is known
    assert relay.woken == 1
