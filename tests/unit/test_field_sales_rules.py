"""The stage machine and the forecast arithmetic, as pure rules."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.field_sales.domain import (
    IllegalMove,
    OpenDeal,
    SalesPolicy,
    check_move,
    forecast,
)


def test_open_deals_move_between_open_stages_and_close() -> None:
    check_move("qualification", "proposal", accepted=True)
    check_move("negotiation", "quote", accepted=True)  # back a step: the customer asked again
    check_move("approval", "won", accepted=True)
    check_move("proposal", "lost", accepted=True)


@pytest.mark.parametrize(
    ("current", "target", "accepted", "says"),
    [
        ("won", "proposal", True, "closed"),
        ("lost", "won", True, "closed"),
        ("qualification", "proposal", False, "accept"),
        ("quote", "quote", True, "already"),
        ("quote", "demo", True, "unknown"),
    ],
)
def test_illegal_moves(current: str, target: str, accepted: bool, says: str) -> None:
    with pytest.raises(IllegalMove, match=says):
        check_move(current, target, accepted=accepted)


def test_accept_by_is_two_days_by_default() -> None:
    created = datetime(2026, 4, 1, 9, tzinfo=UTC)
    assert SalesPolicy().accept_by(created) == created + timedelta(hours=48)


def test_forecast_sums_and_weighs() -> None:
    deals = [
        OpenDeal("proposal", "o1", 1_000_000, 25, date(2026, 5, 20)),
        OpenDeal("proposal", "o2", 3_000_000, 25, date(2026, 5, 2)),
        OpenDeal("approval", "o1", 2_000_000, 70, date(2026, 6, 30)),
        OpenDeal("quote", None, 500_000, 50, None),
    ]
    result = forecast(deals)
    assert (result.total.count, result.total.amount) == (4, 6_500_000)
    assert result.total.weighted_amount == 250_000 + 750_000 + 1_400_000 + 250_000
    assert result.by_stage["proposal"].amount == 4_000_000
    assert result.by_stage["proposal"].weighted_amount == 1_000_000
    assert result.by_stage["negotiation"].count == 0  # every open stage is listed
    assert result.by_owner["o1"].weighted_amount == 250_000 + 1_400_000
    assert result.by_owner["unassigned"].count == 1
    assert list(result.by_close_month) == ["2026-05", "2026-06", "unscheduled"]
    assert result.by_close_month["2026-05"].amount == 4_000_000
