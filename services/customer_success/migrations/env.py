"""Alembic environment of the customer_success service (its own folder and version table)."""

from services.customer_success.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
