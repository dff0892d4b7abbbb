"""The KPI read model's transactions on both databases: fact rows held in hand as plain rows,
written back when they changed, and only then."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kpi.app import SPEC as KPI
from services.kpi.facts import Rules
from services.kpi.handlers import first
from services.kpi.ingest import ReadModel
from services.kpi.models import DailyTotal, DayRevision, LeadFact, LeadRow, OpportunityFact
from shared.db import read_only
from shared.events import OpportunityAccepted, new_event
from tests.helpers import migrated_sessions

RULES = Rules(tz=ZoneInfo("Asia/Tokyo"), currency="JPY")
LEAD, OPPORTUNITY = "lead-1", "opportunity-1"
AT = datetime(2026, 3, 2, 1, tzinfo=UTC)


@pytest.fixture
async def sessions(database_url: Callable[[str], Any]) -> AsyncIterator[async_sessionmaker[Any]]:
    async with migrated_sessions(await database_url("kpi"), "kpi", KPI.migrations) as made:
        yield made


def webinar(lead: LeadRow) -> None:
    lead.source = "webinar"
    first("captured_at", AT)(lead)


async def in_one_transaction(
    sessions: async_sessionmaker[AsyncSession], *changes: Callable[[ReadModel], Any]
) -> None:
    async with sessions() as session, session.begin():
        model = ReadModel(session, RULES)
        for change in changes:
            await change(model)
        await model.finish()


async def test_a_row_read_again_stays_the_one_in_hand(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """An opportunity changed, then read again with its lead, keeps its change; the lead's new
    source reaches it too, and both are counted under that source."""
    await in_one_transaction(
        sessions,
        lambda m: m.change_lead(LEAD, webinar),
        lambda m: m.change_opportunity(OPPORTUNITY, LEAD, first("created_at", AT)),
    )

    def to_ads(lead: LeadRow) -> None:
        lead.source = "ads"

    await in_one_transaction(
        sessions,  # the opportunity alone first: its lead is read after it
        lambda m: m.change_opportunity(OPPORTUNITY, LEAD, first("lost_at", AT + timedelta(1))),
        lambda m: m.change_lead(LEAD, to_ads),
    )
    async with sessions() as session:
        opportunity = await session.get(OpportunityFact, OPPORTUNITY)
        totals = (await session.execute(select(DailyTotal))).scalars().all()
    assert opportunity is not None
    assert (opportunity.source, opportunity.lost_at) == ("ads", AT + timedelta(1))
    counted = {(t.metric, t.source): t.value for t in totals if t.value}
    assert counted == {
        ("leads_captured", "ads"): 1,
        ("sqls", "ads"): 1,
        ("deals_lost", "ads"): 1,
    }


async def test_a_change_that_changes_nothing_writes_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A milestone known already at an earlier time: the row, the totals and the days'
    revisions (what cached KPI results are checked against) stay as they were."""
    await in_one_transaction(sessions, lambda m: m.change_lead(LEAD, webinar))
    async with sessions() as session:
        before = (await session.execute(select(DayRevision.day, DayRevision.revision))).all()
    assert before

    await in_one_transaction(
        sessions, lambda m: m.change_lead(LEAD, first("captured_at", AT + timedelta(hours=1)))
    )
    async with sessions() as session:
        after = (await session.execute(select(DayRevision.day, DayRevision.revision))).all()
        totals = (await session.execute(select(DailyTotal.metric, DailyTotal.value))).all()
    assert after == before
    assert [tuple(t) for t in totals] == [("leads_captured", 1)]


async def test_an_events_ids_and_their_text_name_the_same_rows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Handlers name leads and opportunities by their events' UUIDs (made text once for the
    transaction, when its events are prepared), or by text (a journey's lead from the envelope);
    an id no prepared event names is made text on the spot. Each reaches the same fact row."""
    lead, opportunity, unprepared = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    accepted = OpportunityAccepted(opportunity_id=opportunity, lead_id=lead, owner_id=uuid.uuid4())
    event = new_event(accepted, time=AT)
    async with sessions() as session, session.begin():
        model = ReadModel(session, RULES)
        await model.prepare([(event, accepted)])
        await model.change_lead(lead, webinar)
        await model.change_lead(str(lead), first("mql_at", AT + timedelta(hours=1)))
        await model.change_opportunity(opportunity, lead, first("created_at", AT))
        await model.change_opportunity(str(opportunity), str(lead), first("accepted_at", AT))
        await model.change_lead(unprepared, webinar)
        await model.finish()
    async with sessions() as session:
        leads = {row.lead_id: row for row in (await session.execute(select(LeadFact))).scalars()}
        opportunities = (await session.execute(select(OpportunityFact))).scalars().all()
    assert set(leads) == {str(lead), str(unprepared)}
    assert (leads[str(lead)].captured_at, leads[str(lead)].mql_at) == (AT, AT + timedelta(hours=1))
    [row] = opportunities
    assert (row.opportunity_id, row.lead_id, row.source) == (str(opportunity), str(lead), "webinar")
    assert (row.created_at, row.accepted_at) == (AT, AT)


async def test_a_transaction_carries_on_from_the_rows_the_one_before_changed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A one-writer service handles a fetch while the one before writes: the next transaction's
    work takes the rows the one before changed from it (`carry`), not from the database, where
    they are not yet. An opportunity new there, of a lead it only read, then follows the lead's
    new source, as one read from the database with its lead would."""
    await in_one_transaction(sessions, lambda m: m.change_lead(LEAD, webinar))

    def to_ads(lead: LeadRow) -> None:
        lead.source = "ads"

    async with sessions() as session, session.begin():
        before = ReadModel(session, RULES)
        await before.change_opportunity(OPPORTUNITY, LEAD, first("created_at", AT))
        before.settle()
        async with sessions() as reading, reading.begin():
            await read_only(reading)
            after = ReadModel(reading, RULES)
            after.carry(before)
            await after.change_lead(LEAD, to_ads)
            after.settle()
        await before.write(session)
    async with sessions() as session, session.begin():
        await after.write(session)
    async with sessions() as session:
        opportunity = await session.get(OpportunityFact, OPPORTUNITY)
        totals = (await session.execute(select(DailyTotal))).scalars().all()
    assert opportunity is not None and opportunity.source == "ads"
    counted = {(t.metric, t.source): t.value for t in totals if t.value}
    assert counted == {("leads_captured", "ads"): 1, ("sqls", "ads"): 1}
