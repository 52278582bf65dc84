"""Alembic environment of notification: run by ``shared.migrations.upgrade`` with a live connection,
or by the ``alembic`` command with ``-x url=<sync or async URL>`` (for ``revision --autogenerate``)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.notification.store import metadata
from shared.db import plumbing_tables

plumbing_tables(metadata)  # the outbox, inbox and failures tables are part of the schema too

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or "sqlite+aiosqlite:///var/notification.db"

    async def _main() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_main())


if context.is_offline_mode():
    raise SystemExit("notification migrations run online only")
run_migrations_online()
