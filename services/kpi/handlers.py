"""Incoming events -> read model changes; the event -> handler table of the KPI service.

Every merge keeps the earliest time of a milestone, so events may arrive in any order. Customer
Success events name the journey's lead in their envelope (`correlationid`), not in their data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from services.kpi.facts import earliest, mrr_change, nps_contributions, spread
from services.kpi.ingest import ReadModel, journey_lead
from services.kpi.models import LeadRow, OpportunityRow
from services.kpi.periods import local_day
from shared.events import (
    CampaignCostRecorded,
    ChurnRisk,
    ContractRenewed,
    CustomerChurned,
    CustomerOnboarded,
    DealLost,
    DealWon,
    EventData,
    LeadAccepted,
    LeadCaptured,
    LeadContacted,
    LeadDisqualified,
    LeadEngaged,
    LeadQualified,
    LeadRecycled,
    LeadResponseSlaBreached,
    NpsRecorded,
    OpportunityAccepted,
    OpportunityCreated,
    OpportunityNeglected,
    UpsellWon,
)
from shared.inbox import EventContext, Handler, Selective

E = TypeVar("E", bound=EventData)
KpiHandler = Callable[[ReadModel, EventContext, Any], Awaitable[None]]


def _with_money(counts: dict[str, int], metric: str, amount: int | None) -> dict[str, int]:
    """`counts` and the amount on `metric`; an amount with no exchange rate is counted apart."""
    return {**counts, **({metric: amount} if amount is not None else {"unconverted_amounts": 1})}


def first(milestone: str, at: datetime) -> Callable[[Any], None]:
    """A change recording `at` as the time of `milestone`, unless an earlier one is known."""

    def change(row: Any) -> None:
        setattr(row, milestone, earliest(getattr(row, milestone), at))

    return change


async def lead_captured(model: ReadModel, ctx: EventContext, e: LeadCaptured) -> None:
    def change(lead: LeadRow) -> None:
        first("captured_at", ctx.envelope.time)(lead)
        lead.source, lead.campaign_id = e.source, str(e.campaign_id or "")

    await model.change_lead(e.lead_id, change)


def downloads(e: LeadEngaged) -> bool:
    """Of a lead's engagements, the content downloads alone move a KPI (downloads a day); the
    others (page views, clicks, ...) are not handled: ignored."""
    return e.activity == "content_download"


async def lead_engaged(model: ReadModel, ctx: EventContext, e: LeadEngaged) -> None:
    if not downloads(e):
        return
    day = local_day(ctx.envelope.time, model.rules.tz).isoformat()

    def change(lead: LeadRow) -> None:
        lead.downloads = {**lead.downloads, day: lead.downloads.get(day, 0) + 1}

    await model.change_lead(e.lead_id, change)


async def lead_qualified(model: ReadModel, ctx: EventContext, e: LeadQualified) -> None:
    def change(lead: LeadRow) -> None:
        first("mql_at", ctx.envelope.time)(lead)
        if lead.captured_at is None:  # LeadCaptured not here yet: its source is the same
            lead.source, lead.campaign_id = e.source, str(e.campaign_id or "")

    await model.change_lead(e.lead_id, change)


async def lead_accepted(model: ReadModel, ctx: EventContext, e: LeadAccepted) -> None:
    await model.change_lead(e.lead_id, first("respond_by", e.respond_by))


async def lead_contacted(model: ReadModel, ctx: EventContext, e: LeadContacted) -> None:
    await model.change_lead(e.lead_id, first("first_touch_at", ctx.envelope.time))


async def response_breached(
    model: ReadModel, ctx: EventContext, e: LeadResponseSlaBreached
) -> None:
    await model.change_lead(e.lead_id, first("sla_breached_at", ctx.envelope.time))


async def lead_recycled(model: ReadModel, ctx: EventContext, e: LeadRecycled) -> None:
    model.reason(ctx.envelope.event_id, "recycled", e.reason, ctx.envelope.time)


async def lead_disqualified(model: ReadModel, ctx: EventContext, e: LeadDisqualified) -> None:
    model.reason(ctx.envelope.event_id, "disqualified", e.reason, ctx.envelope.time)


async def opportunity_created(model: ReadModel, ctx: EventContext, e: OpportunityCreated) -> None:
    at = ctx.envelope.time
    await model.change_opportunity(e.opportunity_id, e.lead_id, first("created_at", at))
    await model.change_lead(e.lead_id, first("sql_at", at))


async def opportunity_accepted(model: ReadModel, ctx: EventContext, e: OpportunityAccepted) -> None:
    change = first("accepted_at", ctx.envelope.time)
    await model.change_opportunity(e.opportunity_id, e.lead_id, change)


async def opportunity_neglected(
    model: ReadModel, ctx: EventContext, e: OpportunityNeglected
) -> None:
    change = first("neglected_at", ctx.envelope.time)
    await model.change_opportunity(e.opportunity_id, e.lead_id, change)


async def deal_won(model: ReadModel, ctx: EventContext, e: DealWon) -> None:
    at = ctx.envelope.time
    amount, mrr = model.rules.convert(e.amount, e.currency), model.rules.convert(e.mrr, e.currency)
    if amount is None or mrr is None:
        model.count(at, {"unconverted_amounts": 1})

    def won(opportunity: OpportunityRow) -> None:
        if opportunity.won_at is None or at < opportunity.won_at:
            opportunity.won_at, opportunity.amount, opportunity.mrr = at, amount, mrr

    await model.change_opportunity(e.opportunity_id, e.lead_id, won)
    await model.change_lead(e.lead_id, first("won_at", at))


async def deal_lost(model: ReadModel, ctx: EventContext, e: DealLost) -> None:
    at = ctx.envelope.time
    await model.change_opportunity(e.opportunity_id, e.lead_id, first("lost_at", at))
    model.reason(ctx.envelope.event_id, "lost", e.reason, at)


async def customer_onboarded(model: ReadModel, ctx: EventContext, e: CustomerOnboarded) -> None:
    change = first("onboarded_at", ctx.envelope.time)
    await model.change_opportunity(e.opportunity_id, e.lead_id, change)


async def churn_risk(model: ReadModel, ctx: EventContext, e: ChurnRisk) -> None:
    at = ctx.envelope.time
    at_risk = model.rules.convert(e.mrr_at_risk, e.currency)
    model.count(at, _with_money({"churn_risks": 1}, "mrr_at_risk", at_risk))
    for position, reason in enumerate(dict.fromkeys(e.reasons)):
        model.reason(ctx.envelope.event_id, "churn_risk", reason, at, position)

    await model.change_lead(e.lead_id, first("churn_risk_at", at))


async def nps_recorded(model: ReadModel, ctx: EventContext, e: NpsRecorded) -> None:
    model.add(nps_contributions(e.score, local_day(ctx.envelope.time, model.rules.tz)))


async def upsell_won(model: ReadModel, ctx: EventContext, e: UpsellWon) -> None:
    delta = model.rules.convert(e.mrr_delta, e.currency)
    model.count(ctx.envelope.time, _with_money({"upsells": 1}, "mrr_expansion", delta))


async def contract_renewed(model: ReadModel, ctx: EventContext, e: ContractRenewed) -> None:
    at = ctx.envelope.time
    model.count(at, {"renewals": 1})
    if e.previous_mrr is not None:
        delta = model.rules.convert(e.mrr - e.previous_mrr, e.currency)
        day = local_day(at, model.rules.tz)
        if delta is None:
            model.count(at, {"unconverted_amounts": 1})
        else:
            model.add(mrr_change("mrr_expansion", "mrr_contraction", delta, day))
    if (lead_id := journey_lead(ctx.envelope)) is not None:
        await model.change_lead(lead_id, first("renewed_at", at))


async def customer_churned(model: ReadModel, ctx: EventContext, e: CustomerChurned) -> None:
    at = ctx.envelope.time
    lost = model.rules.convert(e.mrr_lost, e.currency)
    model.count(at, _with_money({"customers_churned": 1}, "mrr_churned", lost))
    model.reason(ctx.envelope.event_id, "churned", e.reason, at)
    if (lead_id := journey_lead(ctx.envelope)) is not None:
        await model.change_lead(lead_id, first("churned_at", at))


async def campaign_cost(model: ReadModel, ctx: EventContext, e: CampaignCostRecorded) -> None:
    amount = model.rules.convert(e.amount, e.currency)
    if amount is None:
        model.count(ctx.envelope.time, {"unconverted_amounts": 1})
        return
    for day, share in spread(amount, e.period_start, e.period_end):
        at = datetime.combine(day, datetime.min.time(), model.rules.tz)
        model.count(at, {"marketing_cost": share}, source=e.channel, campaign_id=str(e.campaign_id))


def _bind(handler: KpiHandler) -> Handler:
    def handle(ctx: EventContext, event: Any) -> Awaitable[None]:
        """(the handler's own coroutine, not one more around it: one is made per event)"""
        if not isinstance(ctx.work, ReadModel):
            raise RuntimeError("KPI handlers need the read model as the inbox's transaction work")
        return handler(ctx.work, ctx, event)

    return handle


_HANDLERS: dict[type[EventData], KpiHandler] = {
    LeadCaptured: lead_captured,
    LeadEngaged: lead_engaged,
    LeadQualified: lead_qualified,
    CampaignCostRecorded: campaign_cost,
    LeadAccepted: lead_accepted,
    LeadContacted: lead_contacted,
    LeadResponseSlaBreached: response_breached,
    LeadRecycled: lead_recycled,
    LeadDisqualified: lead_disqualified,
    OpportunityCreated: opportunity_created,
    OpportunityAccepted: opportunity_accepted,
    OpportunityNeglected: opportunity_neglected,
    DealWon: deal_won,
    DealLost: deal_lost,
    CustomerOnboarded: customer_onboarded,
    ChurnRisk: churn_risk,
    NpsRecorded: nps_recorded,
    UpsellWon: upsell_won,
    ContractRenewed: contract_renewed,
    CustomerChurned: customer_churned,
}
# Of these types, the events that move a KPI (the others change nothing: ignored).
_WANTS: dict[type[EventData], Callable[[Any], bool]] = {LeadEngaged: downloads}
# Events that move no KPI (stage changes, health scores, feedback) are not handled: ignored.
HANDLERS: dict[str, Handler | Selective] = {
    model.event_type(): Selective(_bind(h), wants) if (wants := _WANTS.get(model)) else _bind(h)
    for model, h in _HANDLERS.items()
}
