"""Alembic environment of the kpi service (its own folder and version table)."""

from services.kpi.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
