"""Use cases of the read model: change a fact, move its contributions in the daily totals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

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


class ReadModel:
    """The read model inside one event's transaction."""

    def __init__(self, session: AsyncSession, rules: Rules) -> None:
        self.session = session
        self.rules = rules

    async def change_lead(self, lead_id: str, change: Callable[[LeadFact], None]) -> None:
        """Apply `change` to the lead's facts; its opportunities follow a new source/campaign."""
        lead = await repository.lead(self.session, lead_id)
        before = lead_contributions(lead, self.rules)
        dimensions = (lead.source, lead.campaign_id)
        change(lead)
        after = lead_contributions(lead, self.rules)
        await repository.add_totals(self.session, difference(before, after))
        if (lead.source, lead.campaign_id) != dimensions:
            for opportunity in await repository.opportunities_of(self.session, lead_id):
                await self._change(opportunity, lambda o: _copy_dimensions(lead, o))

    async def change_opportunity(
        self, opportunity_id: str, lead_id: str, change: Callable[[OpportunityFact], None]
    ) -> None:
        opportunity = await repository.opportunity(self.session, opportunity_id, lead_id)
        await self._change(opportunity, change)

    async def _change(
        self, opportunity: OpportunityFact, change: Callable[[OpportunityFact], None]
    ) -> None:
        before = opportunity_contributions(opportunity, self.rules)
        change(opportunity)
        after = opportunity_contributions(opportunity, self.rules)
        await repository.add_totals(self.session, difference(before, after))

    async def count(
        self, at: datetime, values: dict[str, int], *, source: str = "", campaign_id: str = ""
    ) -> None:
        """Add a stand-alone event's values on its day."""
        day = local_day(at, self.rules.tz)
        delta: Contributions = Counter(
            {Key(metric, day, source, campaign_id): value for metric, value in values.items()}
        )
        await repository.add_totals(self.session, difference(Counter(), delta))

    async def add(self, delta: Contributions) -> None:
        await repository.add_totals(self.session, difference(Counter(), delta))

    async def reason(
        self, event_id: str, kind: str, reason: str, at: datetime, position: int = 0
    ) -> None:
        await repository.add_reason(self.session, event_id, position, kind, reason, at)


def _copy_dimensions(lead: LeadFact, opportunity: OpportunityFact) -> None:
    opportunity.source, opportunity.campaign_id = lead.source, lead.campaign_id
