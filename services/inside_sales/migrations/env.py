"""Alembic environment of the inside_sales service (its own folder and version table)."""

from services.inside_sales.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
