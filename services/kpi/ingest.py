"""Use cases of the read model: change a fact, move its contributions in the daily totals."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi import repository
from services.kpi.facts import (
    Contributions,
    Key,
    Rules,
    difference,
    lead_contributions,
    opportunity_contributions,
)
from services.kpi.models import LeadFact, OpportunityFact
from services.kpi.periods import local_day
from services.kpi.service import SAMPLES
from services.kpi.settings import Settings
from shared.events import Envelope, EventData
from shared.settings import ServiceSettings

# The milestones that date each kind of fact's duration samples (a median's inputs).
DATED_BY = {
    table: tuple(milestone for kind, milestone, _ in SAMPLES if kind is table)
    for table in (LeadFact, OpportunityFact)
}


def journey_lead(envelope: Envelope) -> str | None:
    """The journey's lead id from the envelope (`correlationid`), if it is one."""
    try:
        return str(uuid.UUID(envelope.correlationid))
    except ValueError:
        return None


class ReadModel:
    """The read model inside one inbox transaction (the KPI service's `TransactionWork`).

    The facts the transaction's events touch are loaded together before they are handled, and
    the daily totals are moved together before the commit: a fact row's contributions depend on
    the row alone, so the totals move by what each changed row contributes at the end of the
    transaction less what it contributed at its start. The days a changed row reads on, before
    and after, get a new revision, so that KPI results cached for them are worked out again.
    """

    def __init__(self, session: AsyncSession, rules: Rules) -> None:
        self.session = session
        self.rules = rules
        # Loaded (or looked for: None when not known yet) in this transaction, with every
        # opportunity of each loaded lead.
        self._leads: dict[str, LeadFact | None] = {}
        self._opportunities: dict[str, OpportunityFact | None] = {}
        self._opportunities_of: dict[str, list[OpportunityFact]] = {}
        # Rows changed in this transaction, with their contributions and the days they read on
        # before the first change.
        self._changed_leads: dict[str, tuple[LeadFact, Contributions, set[date]]] = {}
        self._changed_opportunities: dict[
            str, tuple[OpportunityFact, Contributions, set[date]]
        ] = {}
        self._totals: Contributions = Counter()
        self._reasons: list[dict[str, Any]] = []

    async def prepare(self, events: Sequence[tuple[Envelope, EventData]]) -> None:
        """Load the facts of the leads and opportunities `events` name, in two queries."""
        lead_ids, opportunity_ids = set(), set()
        for envelope, data in events:
            lead_id = getattr(data, "lead_id", None)
            lead = str(lead_id) if lead_id is not None else journey_lead(envelope)
            if lead is not None:
                lead_ids.add(lead)
            if (opportunity_id := getattr(data, "opportunity_id", None)) is not None:
                opportunity_ids.add(str(opportunity_id))
        await self._load(lead_ids, opportunity_ids)

    async def finish(self) -> None:
        """Move the daily totals by the transaction's changes, write its reasons, and move on
        the revision of every day the transaction changed."""
        totals = self._totals
        days = {key.day for key in totals}
        for lead, before, before_days in self._changed_leads.values():
            after = lead_contributions(lead, self.rules)
            totals.update(difference(before, after))
            days |= before_days | self._days(lead, after)
        for opportunity, before, before_days in self._changed_opportunities.values():
            after = opportunity_contributions(opportunity, self.rules)
            totals.update(difference(before, after))
            days |= before_days | self._days(opportunity, after)
        await repository.add_totals(self.session, totals)
        await repository.touch_days(self.session, days)
        await repository.add_reasons(self.session, self._reasons)

    async def change_lead(self, lead_id: str, change: Callable[[LeadFact], None]) -> None:
        """Apply `change` to the lead's facts; its opportunities follow a new source/campaign."""
        lead = await self._lead(lead_id)
        if lead is None:
            lead = self._leads[lead_id] = repository.new_lead(self.session, lead_id)
        if lead_id not in self._changed_leads:
            before = lead_contributions(lead, self.rules)
            self._changed_leads[lead_id] = (lead, before, self._days(lead, before))
        dimensions = (lead.source, lead.campaign_id)
        change(lead)
        if (lead.source, lead.campaign_id) != dimensions:
            for opportunity in self._opportunities_of[lead_id]:
                self._change(opportunity, lambda o: _copy_dimensions(lead, o))

    async def change_opportunity(
        self, opportunity_id: str, lead_id: str, change: Callable[[OpportunityFact], None]
    ) -> None:
        if opportunity_id not in self._opportunities:
            await self._load((), (opportunity_id,))
        opportunity = self._opportunities[opportunity_id]
        if opportunity is None:
            lead = await self._lead(lead_id)
            opportunity = repository.new_opportunity(self.session, opportunity_id, lead_id, lead)
            self._opportunities[opportunity_id] = opportunity
            self._opportunities_of[lead_id].append(opportunity)
        self._change(opportunity, change)

    def _change(
        self, opportunity: OpportunityFact, change: Callable[[OpportunityFact], None]
    ) -> None:
        if opportunity.opportunity_id not in self._changed_opportunities:
            before = opportunity_contributions(opportunity, self.rules)
            self._changed_opportunities[opportunity.opportunity_id] = (
                opportunity,
                before,
                self._days(opportunity, before),
            )
        change(opportunity)

    def count(
        self, at: datetime, values: dict[str, int], *, source: str = "", campaign_id: str = ""
    ) -> None:
        """Add a stand-alone event's values on its day."""
        day = local_day(at, self.rules.tz)
        for metric, value in values.items():
            self._totals[Key(metric, day, source, campaign_id)] += value

    def add(self, delta: Contributions) -> None:
        self._totals.update(delta)

    def reason(
        self, event_id: str, kind: str, reason: str, at: datetime, position: int = 0
    ) -> None:
        self._reasons.append(
            {
                "event_id": event_id,
                "position": position,
                "kind": kind,
                "reason": reason,
                "occurred_at": at,
            }
        )

    def _days(self, row: LeadFact | OpportunityFact, contributions: Contributions) -> set[date]:
        """The days `row` counts on, and those its duration samples are dated on."""
        days = {key.day for key in contributions}
        for milestone in DATED_BY[type(row)]:
            if (at := getattr(row, milestone)) is not None:
                days.add(local_day(at, self.rules.tz))
        return days

    async def _lead(self, lead_id: str) -> LeadFact | None:
        """The lead's facts; None if it is not known yet."""
        if lead_id not in self._leads:
            await self._load((lead_id,), ())
        return self._leads[lead_id]

    async def _load(self, lead_ids: Collection[str], opportunity_ids: Collection[str]) -> None:
        """Load the leads and opportunities not loaded yet, and every opportunity of the leads.

        Nothing is flushed first: the rows this transaction added are already in hand (an
        opportunity is only added once its lead is loaded, so a lead loaded later has none)."""
        new_leads = {i for i in lead_ids if i not in self._leads}
        new_opportunities = {i for i in opportunity_ids if i not in self._opportunities}
        if not new_leads and not new_opportunities:
            return
        with self.session.no_autoflush:
            found = {row.lead_id: row for row in await repository.leads(self.session, new_leads)}
            opportunities = await repository.opportunities(
                self.session, new_opportunities, new_leads
            )
        for lead_id in new_leads:
            self._leads[lead_id] = found.get(lead_id)
            self._opportunities_of[lead_id] = []
        for opportunity_id in new_opportunities:
            self._opportunities[opportunity_id] = None
        for opportunity in opportunities:
            self._opportunities[opportunity.opportunity_id] = opportunity
            if opportunity.lead_id in new_leads:
                self._opportunities_of[opportunity.lead_id].append(opportunity)


def read_model(session: AsyncSession, settings: ServiceSettings) -> ReadModel:
    """The KPI service's work for one inbox transaction."""
    return ReadModel(session, cast(Settings, settings).rules())


def _copy_dimensions(lead: LeadFact, opportunity: OpportunityFact) -> None:
    opportunity.source, opportunity.campaign_id = lead.source, lead.campaign_id
