"""Run a service's Alembic migrations programmatically at start, on SQLite and PostgreSQL.

Replicas of a service may start together: on PostgreSQL a transaction-scoped advisory lock makes
the others wait, on SQLite ``BEGIN IMMEDIATE`` (see :func:`shared.db.make_engine`) does the same.
The upgrade runs in one transaction, so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.db import plumbing_tables


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


def run_env(metadata: MetaData, service: str) -> None:
    """The body of every service's Alembic ``env.py``: migrate ``metadata`` on the connection
    ``upgrade`` passes in, or, from the ``alembic`` command, on ``-x url=<URL>`` (default: the
    service's development SQLite file) for ``revision --autogenerate``."""
    from alembic import context

    plumbing_tables(metadata)  # the outbox, inbox and failures tables are part of every schema

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        raise SystemExit(f"{service} migrations run online only")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or f"sqlite+aiosqlite:///var/{service}.db"

    async def main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(run)
        await engine.dispose()

    asyncio.run(main())
