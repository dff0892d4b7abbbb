"""the lead's capture opens its timeline: "new" is no longer stored as a status change

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 20:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The timeline now begins with the lead's captured_at; a stored "new" would show twice.
    op.execute("DELETE FROM lead_status_changes WHERE status = 'new'")


def downgrade() -> None:
    op.execute(
        "INSERT INTO lead_status_changes (lead_id, status, occurred_at) "
        "SELECT id, 'new', captured_at FROM leads"
    )
