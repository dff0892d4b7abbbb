"""The plain fact rows the KPI ingest holds in hand: read and written by position, so they must
follow their tables' columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.kpi.models import (
    LeadFact,
    LeadRow,
    OpportunityFact,
    OpportunityRow,
    fact_columns,
    fact_record,
    fact_values,
)


@pytest.mark.parametrize(("row", "table"), [(LeadRow, LeadFact), (OpportunityRow, OpportunityFact)])
def test_fact_rows_have_their_tables_columns_in_order(row: Any, table: Any) -> None:
    assert fact_columns(row) == tuple(table.__table__.columns.keys())


def test_a_row_gives_its_values_and_record_in_column_order() -> None:
    at = datetime(2026, 3, 2, tzinfo=UTC)
    row = OpportunityRow("o-1", "l-1", source="ads", won_at=at, amount=5)
    values = fact_values(row)
    assert values == ("o-1", "l-1", "ads", "", None, None, None, at, 5, None, None, None)
    assert fact_record(row) == dict(zip(fact_columns(OpportunityRow), values, strict=True))
    assert LeadRow("l-1").downloads == {}  # a new lead's, its own
    assert LeadRow("l-1").downloads is not LeadRow("l-2").downloads
