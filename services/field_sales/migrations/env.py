"""Alembic environment of the field_sales service (its own folder and version table)."""

from services.field_sales.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
