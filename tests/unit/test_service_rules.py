"""The little domain the skeletons already hold."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.customer_success.domain import renewal_date
from services.inside_sales.domain import respond_by


def test_first_contact_is_due_a_day_after_the_mql() -> None:
    qualified = datetime(2026, 3, 31, 18, 0, tzinfo=UTC)
    assert respond_by(qualified) == datetime(2026, 4, 1, 18, 0, tzinfo=UTC)


def test_renewal_date_is_the_end_of_the_term() -> None:
    assert renewal_date(date(2026, 4, 1), 12) == date(2027, 4, 1)
    assert renewal_date(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert renewal_date(date(2026, 11, 15), 3) == date(2027, 2, 15)
    assert renewal_date(date(2024, 2, 29), 12) == date(2025, 2, 28)
