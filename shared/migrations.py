"""Run a service's Alembic migrations programmatically at start, on SQLite and PostgreSQL.

Replicas of a service may start together: on PostgreSQL a transaction-scoped advisory lock makes
the others wait, on SQLite ``BEGIN IMMEDIATE`` (see :func:`shared.db.make_engine`) does the same.
The upgrade runs in one transaction, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(script_location: Path | str, connection: Connection | None = None) -> Config:
    """An Alembic config for ``script_location`` (a service's ``migrations`` folder), no ini file."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _lock_key(script_location: Path | str) -> int:
    return zlib.crc32(str(Path(script_location).name + str(script_location)).encode()) & 0x7FFFFFFF


async def upgrade(engine: AsyncEngine, script_location: Path | str, revision: str = "head") -> None:
    """Bring the database of ``engine`` to ``revision`` (default: the latest)."""

    def _run(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(script_location)})
        command.upgrade(alembic_config(script_location, conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None before the first migration)."""

    def _current(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision(script_location: Path | str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(script_location)).get_current_head()


def migrator(script_location: Path | str) -> Callable[[AsyncEngine], Awaitable[None]]:
    """A ``migrate`` function for :class:`shared.runtime.Runtime`: upgrade to head at start."""

    async def _migrate(engine: AsyncEngine) -> None:
        await upgrade(engine, script_location)

    return _migrate
