"""SQLite as the embedded default: what the shared engine set-up does for the query planner."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from shared.db import make_engine, refresh_sqlite_statistics


async def test_sqlite_statistics_steer_a_scoped_lookup_to_the_primary_key(tmp_path: Path) -> None:
    """Without statistics SQLite read a scoped name search through the province index (every case
    of the province); after ``refresh_sqlite_statistics`` it looks the few ids up by key."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'plan.db'}")
    query = (
        "SELECT id FROM c WHERE province IN ('01') AND id IN "
        "(SELECT case_id FROM l WHERE kind = 'name' AND digest = 'd7')"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE c (id VARCHAR PRIMARY KEY, province VARCHAR)"))
            await conn.execute(text("CREATE INDEX ix_c_province ON c (province)"))
            await conn.execute(text("CREATE TABLE l (case_id VARCHAR, kind VARCHAR, digest VARCHAR)"))
            await conn.execute(text("CREATE INDEX ix_l ON l (kind, digest)"))
            rows = [{"id": f"case-{i}", "p": f"0{i % 3 + 1}", "d": f"d{i}"} for i in range(3000)]
            await conn.execute(text("INSERT INTO c VALUES (:id, :p)"), rows)
            await conn.execute(text("INSERT INTO l VALUES (:id, 'name', :d)"), rows)

        async def plan() -> str:
            async with engine.connect() as conn:
                return " | ".join(r[3] for r in await conn.execute(text("EXPLAIN QUERY PLAN " + query)))

        assert "ix_c_province" in await plan()  # the guess without statistics
        await refresh_sqlite_statistics(engine)
        assert "ix_c_province" not in await plan() and "sqlite_autoindex_c_1" in await plan()
    finally:
        await engine.dispose()
