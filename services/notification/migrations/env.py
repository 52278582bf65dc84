"""Alembic environment of notification (see ``shared.migrations.run_env``)."""

from services.notification.store import metadata
from shared.migrations import run_env

run_env(metadata, "notification")
