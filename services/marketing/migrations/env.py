"""Alembic environment of the marketing service (its own folder and version table)."""

from services.marketing.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
