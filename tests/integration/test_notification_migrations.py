"""Issue 6: notification's schema comes from its migrations (SQLite and PostgreSQL), matches the
tables in the code, and a walking-skeleton database is upgraded in place, keeping its rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from services.notification.app import MIGRATIONS
from services.notification.store import metadata
from shared.db import make_engine, plumbing_tables
from shared.migrations import current_revision, head_revision, upgrade

plumbing_tables(metadata)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}"


def _diff(conn: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata))


async def test_migrations_build_the_schema_of_the_code(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for table in ("alembic_version", "webhook_calls", "follow_ups", "contact_profiles", "outbox", "inbox", "delivery_failures"):  # fmt: skip
                await conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        await upgrade(engine, MIGRATIONS)
        await upgrade(engine, MIGRATIONS)  # a second replica starting: nothing to do
        assert await current_revision(engine) == head_revision(MIGRATIONS) == "0002"
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_walking_skeleton_database_is_upgraded_in_place(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    await upgrade(engine, MIGRATIONS, "0001")
    now = datetime.now(UTC).isoformat()
    async with engine.begin() as conn:
        # The skeleton made its tables with create_all: no alembic_version.
        await conn.execute(text("DROP TABLE alembic_version"))
        await conn.execute(text("INSERT INTO contact_profiles VALUES ('c1', '01', 1, 'vi')"))
        await conn.execute(
            text(
                "INSERT INTO follow_ups (id, case_id, province, template, status, due_at, attempts) "
                "VALUES ('m1', 'c1', '01', 'referral_checkin', 'scheduled', :now, 0)"
            ),
            {"now": now},
        )
    await upgrade(engine, MIGRATIONS)
    async with engine.connect() as conn:
        profile = (await conn.execute(text("SELECT opened, erased, sms_channel FROM contact_profiles"))).one()
        assert tuple(profile) == (1, 0, 1)
        assert (await conn.execute(text("SELECT status, phone_hash FROM follow_ups"))).one() == (
            "scheduled",
            None,
        )
        assert await conn.run_sync(_diff) == []
    await engine.dispose()
