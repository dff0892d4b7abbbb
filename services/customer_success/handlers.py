"""Events the customer success service consumes, and what each one does."""

from __future__ import annotations

from services.customer_success import service
from shared.events import DealWon
from shared.inbox import EventContext, Handler


async def on_deal_won(ctx: EventContext, event: DealWon) -> None:
    await service.open_account(ctx.session, event, ctx.envelope.time)


HANDLERS: dict[str, Handler] = {DealWon.event_type(): on_deal_won}
