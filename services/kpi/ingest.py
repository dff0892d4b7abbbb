"""Use cases of the read model: change a fact, move its contributions in the daily totals."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
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
from services.kpi.models import (
    FactRow,
    LeadFact,
    LeadRow,
    OpportunityFact,
    OpportunityRow,
    fact_values,
)
from services.kpi.periods import local_day
from services.kpi.service import SAMPLES
from services.kpi.settings import Settings
from shared.events import EnvelopeAttributes, EventData
from shared.ids import texts_of
from shared.settings import ServiceSettings

# The milestones that date each kind of fact's duration samples (a median's inputs).
DATED_BY = {
    row: tuple(milestone for kind, milestone, _ in SAMPLES if kind is table)
    for table, row in ((LeadFact, LeadRow), (OpportunityFact, OpportunityRow))
}


def journey_lead(envelope: EnvelopeAttributes) -> str | None:
    """The journey's lead id from the envelope (`correlationid`), if it is one."""
    try:
        return str(uuid.UUID(envelope.correlationid))
    except ValueError:
        return None


@dataclass(slots=True)
class _Changed:
    """A fact row changed in this transaction, as it was before its first change: its
    contributions, the days it read on, and its values (None for a row new here)."""

    row: FactRow
    contributions: Contributions
    days: set[date]
    values: tuple[Any, ...] | None


@dataclass(slots=True)
class _Settled:
    """What a read model's transaction writes (`ReadModel.settle`): per kind of fact, the values
    of its new rows and of its changed ones; the daily totals' changes; the days whose revision
    moves on; the reasons."""

    facts: list[tuple[type[FactRow], list[tuple[Any, ...]], list[tuple[Any, ...]]]]
    totals: Contributions
    days: set[date]
    reasons: list[dict[str, Any]]


class ReadModel:
    """The read model inside one inbox transaction (the KPI service's `TransactionWork`).

    The facts the transaction's events touch are loaded together before they are handled, as
    plain rows (`LeadRow`, `OpportunityRow`: no ORM objects), and written back together before
    the commit, the rows that did change only. So are the daily totals: a fact row's
    contributions depend on the row alone, so the totals move by what each changed row
    contributes at the end of the transaction less what it contributed at its start. The days a
    changed row reads on, before and after, get a new revision, so that KPI results cached for
    them are worked out again.
    """

    def __init__(self, session: AsyncSession, rules: Rules) -> None:
        self.session = session
        self.rules = rules
        # Loaded (or looked for: None when not known yet) in this transaction, with every
        # opportunity of each loaded lead.
        self._leads: dict[str, LeadRow | None] = {}
        self._opportunities: dict[str, OpportunityRow | None] = {}
        self._opportunities_of: dict[str, list[OpportunityRow]] = {}
        # Rows changed in this transaction, by id, as they were before.
        self._changed_leads: dict[str, _Changed] = {}
        self._changed_opportunities: dict[str, _Changed] = {}
        self._totals: Counter[Key] = Counter()
        self._reasons: list[dict[str, Any]] = []
        # The text of each id the prepared events name (made together; `str` of a UUID takes
        # five times as long as finding it here).
        self._texts: dict[uuid.UUID, str] = {}
        self._settled: _Settled | None = None

    async def prepare(self, events: Sequence[tuple[EnvelopeAttributes, EventData]]) -> None:
        """Load the facts of the leads and opportunities `events` name, in two queries."""
        lead_ids: set[str] = set()
        leads, opportunities = [], []  # (UUIDs: made text together)
        for envelope, data in events:
            # The data's fields by name (not getattr: a model without the field raises, and
            # pydantic's lookup before it does costs more than the rest of this loop).
            named = data.__dict__
            if (lead_id := named.get("lead_id")) is not None:
                leads.append(lead_id)
            elif (journey := journey_lead(envelope)) is not None:
                lead_ids.add(journey)
            if (opportunity_id := named.get("opportunity_id")) is not None:
                opportunities.append(opportunity_id)
        lead_texts, opportunity_texts = texts_of(leads), texts_of(opportunities)
        self._texts.update(zip(leads, lead_texts, strict=True))
        self._texts.update(zip(opportunities, opportunity_texts, strict=True))
        lead_ids.update(lead_texts)
        await self._load(lead_ids, set(opportunity_texts))

    async def finish(self) -> None:
        """Write what the transaction changed (`settle`, then `write`)."""
        self.settle()
        await self.write(self.session)

    def settle(self) -> None:
        """Work out what the transaction writes: the fact rows that changed, the daily totals
        moved by their changes, the reasons, and the days whose revision moves on (every day
        the transaction changed). Taken as values: the rows may change again afterwards, in
        the next transaction (`carry`), before these are written."""
        totals = self._totals
        days = {key.day for key in totals}
        facts: list[tuple[type[FactRow], list[tuple[Any, ...]], list[tuple[Any, ...]]]] = []
        for kind, changes in (
            (LeadRow, self._changed_leads.values()),
            (OpportunityRow, self._changed_opportunities.values()),
        ):
            new: list[tuple[Any, ...]] = []
            known: list[tuple[Any, ...]] = []
            for change in changes:
                values = fact_values(change.row)
                if change.values is not None and values == change.values:
                    continue  # changed back, or to what it was: nothing to write
                after = _contributions(change.row, self.rules)
                totals.update(difference(change.contributions, after))
                days |= change.days | self._days(change.row, after)
                (new if change.values is None else known).append(values)
            facts.append((kind, new, known))
        self._settled = _Settled(facts, totals, days, self._reasons)

    async def write(self, session: AsyncSession) -> None:
        """Write what `settle` worked out, in `session`'s transaction: no row in two of its
        statements (a new fact is not a changed one), as the inbox sends them together."""
        settled = self._settled
        if settled is None:
            raise RuntimeError("the read model's transaction is written once settled")
        for kind, new, known in settled.facts:
            await repository.save_facts(session, kind, new, known)
        await repository.add_totals(session, settled.totals)
        await repository.touch_days(session, settled.days)
        await repository.add_reasons(session, settled.reasons)

    def carry(self, previous: ReadModel) -> None:
        """Hold, before loading any, the rows the transaction before this one changed, as it
        left them: that transaction may not have committed yet (the service has one writer,
        and handles a fetch while the one before writes: `shared.inbox.OneWriterWork`), and a
        row read from the database meanwhile would be as it was before. A lead comes with every
        opportunity of its, as a loaded one does; so does the lead of a changed opportunity
        (an opportunity new there is in no list read from the database yet). Only the rows it
        changed: a row it merely read is the same in the database either way."""
        leads = set(previous._changed_leads)
        for change in previous._changed_opportunities.values():
            opportunity = cast(OpportunityRow, change.row)
            self._opportunities[opportunity.opportunity_id] = opportunity
            if opportunity.lead_id in previous._leads:
                leads.add(opportunity.lead_id)
        for lead_id in leads:
            self._leads[lead_id] = previous._leads[lead_id]
            of_lead = self._opportunities_of[lead_id] = list(previous._opportunities_of[lead_id])
            for opportunity in of_lead:
                self._opportunities[opportunity.opportunity_id] = opportunity

    async def change_lead(
        self, lead_id: uuid.UUID | str, change: Callable[[LeadRow], None]
    ) -> None:
        """Apply `change` to the lead's facts; its opportunities follow a new source/campaign.
        (Ids are a prepared event's UUIDs, or their text.)"""
        lead_id = self._text(lead_id)
        # (the lead the events prepared, without a coroutine of `_lead`'s: most are)
        lead = self._leads[lead_id] if lead_id in self._leads else await self._lead(lead_id)
        is_new = lead is None
        if lead is None:
            lead = self._leads[lead_id] = LeadRow(lead_id)
        if lead_id not in self._changed_leads:
            self._changed_leads[lead_id] = self._before(lead, is_new)
        dimensions = (lead.source, lead.campaign_id)
        change(lead)
        if (lead.source, lead.campaign_id) != dimensions:
            for opportunity in self._opportunities_of[lead_id]:
                self._change(opportunity, lambda o: _copy_dimensions(lead, o))

    async def change_opportunity(
        self,
        opportunity_id: uuid.UUID | str,
        lead_id: uuid.UUID | str,
        change: Callable[[OpportunityRow], None],
    ) -> None:
        opportunity_id, lead_id = self._text(opportunity_id), self._text(lead_id)
        if opportunity_id not in self._opportunities:
            await self._load((), (opportunity_id,))
        opportunity = self._opportunities[opportunity_id]
        is_new = opportunity is None
        if opportunity is None:
            lead = await self._lead(lead_id)
            opportunity = OpportunityRow(opportunity_id, lead_id)
            if lead is not None:  # the lead's source and campaign, for filtered KPIs
                _copy_dimensions(lead, opportunity)
            self._opportunities[opportunity_id] = opportunity
            self._opportunities_of[lead_id].append(opportunity)
        self._change(opportunity, change, is_new)

    def _change(
        self,
        opportunity: OpportunityRow,
        change: Callable[[OpportunityRow], None],
        is_new: bool = False,
    ) -> None:
        if opportunity.opportunity_id not in self._changed_opportunities:
            self._changed_opportunities[opportunity.opportunity_id] = self._before(
                opportunity, is_new
            )
        change(opportunity)

    def _before(self, row: FactRow, is_new: bool) -> _Changed:
        """`row` as it is before its first change in this transaction."""
        before = _contributions(row, self.rules)
        return _Changed(row, before, self._days(row, before), None if is_new else fact_values(row))

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

    def _days(self, row: FactRow, contributions: Contributions) -> set[date]:
        """The days `row` counts on, and those its duration samples are dated on."""
        days = {key.day for key in contributions}
        for milestone in DATED_BY[type(row)]:
            if (at := getattr(row, milestone)) is not None:
                days.add(local_day(at, self.rules.tz))
        return days

    def _text(self, id_: uuid.UUID | str) -> str:
        if isinstance(id_, str):
            return id_
        return self._texts.get(id_) or str(id_)

    async def _lead(self, lead_id: str) -> LeadRow | None:
        """The lead's facts; None if it is not known yet."""
        if lead_id not in self._leads:
            await self._load((lead_id,), ())
        return self._leads[lead_id]

    async def _load(self, lead_ids: Collection[str], opportunity_ids: Collection[str]) -> None:
        """Load the leads and opportunities not loaded yet, and every opportunity of the leads.

        A row already in hand stays the one in hand (it may have changed since it was read).
        The rows this transaction added are not written yet, and need not be: an opportunity is
        only added once its lead is loaded, so a lead loaded later has none."""
        new_leads = {i for i in lead_ids if i not in self._leads}
        new_opportunities = {i for i in opportunity_ids if i not in self._opportunities}
        if not new_leads and not new_opportunities:
            return
        found = {row.lead_id: row for row in await repository.leads(self.session, new_leads)}
        opportunities = await repository.opportunities(self.session, new_opportunities, new_leads)
        for lead_id in new_leads:
            self._leads[lead_id] = found.get(lead_id)
            self._opportunities_of[lead_id] = []
        for opportunity_id in new_opportunities:
            self._opportunities[opportunity_id] = None
        for row in opportunities:
            opportunity = self._opportunities.get(row.opportunity_id)
            if opportunity is None:
                opportunity = self._opportunities[row.opportunity_id] = row
            if opportunity.lead_id in new_leads:
                self._opportunities_of[opportunity.lead_id].append(opportunity)


def read_model(session: AsyncSession, settings: ServiceSettings) -> ReadModel:
    """The KPI service's work for one inbox transaction."""
    return ReadModel(session, cast(Settings, settings).rules())


def _copy_dimensions(lead: LeadRow, opportunity: OpportunityRow) -> None:
    opportunity.source, opportunity.campaign_id = lead.source, lead.campaign_id


def _contributions(row: FactRow, rules: Rules) -> Contributions:
    if isinstance(row, LeadRow):
        return lead_contributions(row, rules)
    return opportunity_contributions(row, rules)
