"""Use cases of the customer success service; the caller's transaction commits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer_success import domain, repository
from services.customer_success.models import Account, AccountEvent, HealthModelVersion
from services.customer_success.schemas import (
    ChurnBody,
    FeedbackBody,
    HealthModelBody,
    HealthRead,
    NpsBody,
    RenewalBody,
    UpsellBody,
    UsageBody,
)
from shared import versions
from shared.errors import Conflict, NotFound
from shared.events import (
    ChurnRisk,
    ContractRenewed,
    CustomerChurned,
    CustomerFeedbackShared,
    CustomerOnboarded,
    DealWon,
    EventData,
    HealthScoreChanged,
    NpsRecorded,
    UpsellWon,
)
from shared.ids import new_id
from shared.outbox import Outbox


def now() -> datetime:
    return datetime.now(UTC)


async def current_model(
    session: AsyncSession,
) -> tuple[domain.HealthModel, HealthModelBody, HealthModelVersion | None]:
    stored = await versions.latest(session, HealthModelVersion)
    body = HealthModelBody.model_validate(stored.body) if stored else HealthModelBody()
    model = domain.HealthModel(
        weights={str(k): v for k, v in body.weights.items()},
        red_below=body.red_below,
        yellow_below=body.yellow_below,
        logins_per_user_target=body.logins_per_user_target,
        tickets_limit=body.tickets_limit,
    )
    return model, body, stored


def _emit(
    session: AsyncSession, outbox: Outbox, account: Account, data: EventData, at: datetime
) -> None:
    # Every customer event carries the journey's lead, so Marketing and Sales can follow it.
    outbox.emit(session, data, time=at, correlation_id=account.lead_id)


def _log(
    session: AsyncSession, account: Account, kind: str, detail: dict[str, Any], at: datetime
) -> None:
    session.add(AccountEvent(account_id=account.id, kind=kind, detail=detail, occurred_at=at))


async def open_account(session: AsyncSession, deal: DealWon, won_at: datetime) -> None:
    """Open the customer's account from the won deal, with its onboarding checklist."""
    if await repository.account_for_opportunity(session, str(deal.opportunity_id)) is not None:
        return
    _, body, _ = await current_model(session)
    account = Account(
        id=new_id(),
        opportunity_id=str(deal.opportunity_id),
        lead_id=str(deal.lead_id),
        company=deal.company,
        owner_id=str(deal.owner_id),
        mrr=deal.mrr,
        currency=deal.currency,
        term_months=deal.term_months,
        contract_start=deal.contract_start,
        renewal_date=domain.renewal_date(deal.contract_start, deal.term_months),
        status="onboarding",
        won_at=won_at,
        deal_amount=deal.amount,
        churn_risk_open=False,
        onboarding=dict.fromkeys(body.onboarding_steps),
    )
    session.add(account)
    await session.flush()
    _log(session, account, "won", {"amount": deal.amount, "mrr": deal.mrr}, won_at)


async def _live(session: AsyncSession, account_id: str) -> Account:
    account = await repository.get_account(session, account_id, lock=True)
    if account is None:
        raise NotFound(f"no account {account_id}")
    if account.status == "churned":
        raise Conflict("the account has churned")
    return account


async def complete_step(
    session: AsyncSession, outbox: Outbox, account_id: str, step: str, at: datetime | None
) -> Account:
    """Tick an onboarding step; the last one makes the customer onboarded (CustomerOnboarded)."""
    account = await _live(session, account_id)
    if step not in account.onboarding:
        raise NotFound(f"no onboarding step {step!r}; steps: {', '.join(account.onboarding)}")
    when = at or now()
    if account.onboarding[step] is not None:
        return account
    account.onboarding = {**account.onboarding, step: when.isoformat()}
    _log(session, account, "onboarding", {"step": step}, when)
    if all(account.onboarding.values()) and account.onboarded_at is None:
        account.onboarded_at = when
        account.status = "active"
        _emit(
            session,
            outbox,
            account,
            CustomerOnboarded(
                account_id=uuid.UUID(account.id),
                opportunity_id=uuid.UUID(account.opportunity_id),
                lead_id=uuid.UUID(account.lead_id),
            ),
            when,
        )
    return account


async def _rescore(
    session: AsyncSession, outbox: Outbox, account: Account, at: datetime
) -> HealthRead | None:
    """Score the latest usage (with the latest NPS); band changes and drops into red go out."""
    usage_event = await repository.latest_event(session, account.id, "usage")
    if usage_event is None:
        return None
    model, _, _ = await current_model(session)
    usage = domain.Usage(**{k: usage_event.detail[k] for k in domain.Usage.__dataclass_fields__})
    factors = model.factors(usage, account.last_nps)
    score = model.score(factors)
    band = model.band(score)
    change = domain.assess(account.band, band, account.churn_risk_open)  # type: ignore[arg-type]
    account.health_score, account.factors = score, factors
    account.band, account.churn_risk_open = band, change.risk_open
    if change.band_changed:
        _log(session, account, "band", {"band": band, "score": score}, at)
        _emit(
            session,
            outbox,
            account,
            HealthScoreChanged(
                account_id=uuid.UUID(account.id), score=score, band=band, factors=factors
            ),
            at,
        )
    if change.churn_risk:
        _emit(
            session,
            outbox,
            account,
            ChurnRisk(
                account_id=uuid.UUID(account.id),
                lead_id=uuid.UUID(account.lead_id),
                health_score=score,
                band=band,
                reasons=model.worst(factors),
                mrr_at_risk=account.mrr,
                currency=account.currency,
            ),
            at,
        )
    return HealthRead(
        score=score,
        band=band,
        factors=factors,
        band_changed=change.band_changed,
        churn_risk=change.churn_risk,
    )


async def record_usage(
    session: AsyncSession, outbox: Outbox, account_id: str, body: UsageBody
) -> HealthRead:
    account = await _live(session, account_id)
    at = body.occurred_at or now()
    _log(session, account, "usage", body.model_dump(exclude={"occurred_at"}), at)
    await session.flush()
    health = await _rescore(session, outbox, account, at)
    assert health is not None
    return health


async def record_nps(session: AsyncSession, outbox: Outbox, account_id: str, body: NpsBody) -> None:
    account = await _live(session, account_id)
    at = body.occurred_at or now()
    account.last_nps = body.score
    _log(session, account, "nps", {"score": body.score, "comment": body.comment}, at)
    _emit(
        session,
        outbox,
        account,
        NpsRecorded(account_id=uuid.UUID(account.id), score=body.score, comment=body.comment),
        at,
    )
    await _rescore(session, outbox, account, at)  # NPS is a factor of health


async def upsell(
    session: AsyncSession, outbox: Outbox, account_id: str, body: UpsellBody
) -> Account:
    account = await _live(session, account_id)
    at = body.occurred_at or now()
    account.mrr += body.mrr_delta
    _log(session, account, "upsell", {"mrr_delta": body.mrr_delta, "product": body.product}, at)
    _emit(
        session,
        outbox,
        account,
        UpsellWon(
            account_id=uuid.UUID(account.id),
            mrr_delta=body.mrr_delta,
            currency=account.currency,
            product=body.product,
        ),
        at,
    )
    return account


async def renew(
    session: AsyncSession, outbox: Outbox, account_id: str, body: RenewalBody
) -> Account:
    account = await _live(session, account_id)
    at = body.occurred_at or now()
    previous_mrr = account.mrr
    account.mrr, account.term_months = body.mrr, body.term_months
    account.renewal_date = domain.renewal_date(account.renewal_date, body.term_months)
    _log(session, account, "renewal", {"mrr": body.mrr, "term_months": body.term_months}, at)
    _emit(
        session,
        outbox,
        account,
        ContractRenewed(
            account_id=uuid.UUID(account.id),
            mrr=body.mrr,
            previous_mrr=previous_mrr,
            currency=account.currency,
        ),
        at,
    )
    return account


async def churn(session: AsyncSession, outbox: Outbox, account_id: str, body: ChurnBody) -> Account:
    account = await _live(session, account_id)
    at = body.occurred_at or now()
    account.status, account.churned_at = "churned", at
    _log(session, account, "churn", {"reason": body.reason, "mrr_lost": account.mrr}, at)
    _emit(
        session,
        outbox,
        account,
        CustomerChurned(
            account_id=uuid.UUID(account.id),
            mrr_lost=account.mrr,
            reason=body.reason,
            currency=account.currency,
        ),
        at,
    )
    return account


async def share_feedback(
    session: AsyncSession, outbox: Outbox, account_id: str, body: FeedbackBody
) -> None:
    """The customer's voice, for Marketing (case studies) and Sales."""
    account = await repository.get_account(session, account_id)
    if account is None:
        raise NotFound(f"no account {account_id}")
    at = body.occurred_at or now()
    _log(session, account, "feedback", {"kind": body.kind, "text": body.text}, at)
    _emit(
        session,
        outbox,
        account,
        CustomerFeedbackShared(account_id=uuid.UUID(account.id), kind=body.kind, text=body.text),
        at,
    )
