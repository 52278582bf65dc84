"""Alembic environment of intake (see ``shared.migrations.run_env``)."""

from services.intake.store import metadata
from shared.migrations import run_env

run_env(metadata, "intake")
