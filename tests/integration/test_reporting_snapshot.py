"""A report is several reads (figures, then facts); a consumer committing between them must not
show in some and not in others. Over a range of days, distinct women are her facts counted in the
cube less her repeats read from the facts: read in two states, the figure would be wrong. Here the
commit is made, from another connection, right before the report's first read of the facts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.reporting.api import run_report
from services.reporting.batch import apply_batch
from services.reporting.periods import Phases
from services.reporting.queries import render
from services.reporting.reads import CubeQuery
from services.reporting.store import metadata
from shared.db import create_schema, make_engine, make_read_engine, make_sessionmaker
from shared.events import Event, SessionRecorded
from tests.unit.test_reporting_history import HASHER, PHASES, generate

HISTORY = generate(300, seed=23)
START, END = date(2025, 6, 15), date(2025, 7, 14)
QUERY = CubeQuery(None, None, START, END, (), ("age_band",))


def held_back() -> tuple[list[Event], list[Event]]:
    """(the history but every other session in the range, those sessions)."""
    inside = [e for e in HISTORY.events if isinstance(e, SessionRecorded) and START <= e.held_on <= END]
    later = inside[::2]
    ids = {id(e) for e in later}
    return [e for e in HISTORY.events if id(e) not in ids], later


async def apply(engine: AsyncEngine, events: list[Event]) -> None:
    async with engine.begin() as conn:
        failed = await conn.run_sync(lambda c: apply_batch(c, events, HASHER, Phases.of(PHASES)))
    assert not failed


async def report(reader: AsyncEngine) -> dict[str, Any]:
    async with make_sessionmaker(reader)() as session:
        return await session.run_sync(lambda s: render(run_report(s, QUERY)))


async def report_with_commit_between_reads(reader: AsyncEngine, commit: Callable[[], None]) -> dict[str, Any]:
    fired = threading.Event()

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "rpt_fact" in statement and not fired.is_set():
            fired.set()
            commit()  # returns once the other connection has committed

    event.listen(reader.sync_engine, "before_cursor_execute", before)
    try:
        return await report(reader)
    finally:
        event.remove(reader.sync_engine, "before_cursor_execute", before)
        assert fired.is_set()


async def check(writer: AsyncEngine, reader: AsyncEngine, new_writer: Callable[[], AsyncEngine]) -> None:
    first, later = held_back()
    await apply(writer, first)
    before = await report(reader)

    async def write_later() -> None:
        engine = new_writer()
        try:
            await apply(engine, later)
        finally:
            await engine.dispose()

    def commit() -> None:  # on a loop and a connection of its own, as another replica would
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, write_later()).result()

    during = await report_with_commit_between_reads(reader, commit)
    after = await report(reader)
    assert after["totals"]["women_reached"] > before["totals"]["women_reached"]  # the commit counts
    assert during == before


async def test_a_report_reads_one_state_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    writer, reader = make_engine(url), make_read_engine(url)
    assert reader is not None
    try:
        await create_schema(writer, metadata)
        await check(writer, reader, lambda: make_engine(url))
    finally:
        await writer.dispose()
        await reader.dispose()


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_a_report_reads_one_state_on_postgresql(pg_url: str, pg_engine: AsyncEngine) -> None:
    # PostgreSQL serves reads from the same pool as writes (no read engine).
    await check(pg_engine, pg_engine, lambda: create_async_engine(pg_url))


@pytest.mark.postgres
async def test_a_report_after_another_read_in_read_committed_says_so(pg_engine: AsyncEngine) -> None:
    """Too late for one snapshot: an error that says why, not a report read in two states."""
    async with make_sessionmaker(pg_engine)() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="before the session's first read"):
            await session.run_sync(lambda s: run_report(s, QUERY))
