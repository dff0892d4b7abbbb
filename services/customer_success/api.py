"""Routes of the customer success API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.customer_success import repository
from services.customer_success.schemas import AccountRead
from shared.http import SessionDep, require
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["accounts"])
READ = Depends(require("customer_success:read"))


@router.get("/accounts", dependencies=[READ])
async def list_accounts(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[AccountRead]:
    """Accounts by renewal date, soonest first."""
    return [AccountRead.model_validate(a) for a in await repository.list_accounts(session, limit)]


@router.get("/accounts/{account_id}", dependencies=[READ])
async def get_account(account_id: uuid.UUID, session: SessionDep) -> AccountRead:
    account = await repository.get_account(session, str(account_id))
    if account is None:
        raise Problem(404, f"no account {account_id}", type="not-found")
    return AccountRead.model_validate(account)
