"""Reporting's live batches on PostgreSQL (production's database): facts get the previous days the
rebuild gives them, also when two replicas add facts of one woman at the same time."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest
from sqlalchemy import MetaData, Table, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from services.reporting.api import run_report
from services.reporting.batch import apply_batch
from services.reporting.domain import DAYS_TO_COMPLETION
from services.reporting.periods import Phases
from services.reporting.projections import DIMENSIONS, RANGE_KINDS, Fact, previous_days
from services.reporting.queries import render
from services.reporting.reads import CubeQuery
from services.reporting.rebuild import compare, rebuild
from services.reporting.settings import ReportingSettings
from services.reporting.store import (
    COMPACT_AFTER,
    LIVE,
    compact_histograms,
    cube_contents,
    increment_cells,
    metadata,
    projection_tables,
    write_memory_state,
)
from shared.events import CaseOpened, Event, SessionRecorded
from shared.natsserver import NatsServer
from shared.settings import BusSettings, PlatformSettings
from tests.integration.test_reporting_acceptance import publish_all
from tests.unit.test_reporting_history import HASHER, HASHER_KEY, PHASES, generate, project, tables_of

pytestmark = pytest.mark.postgres

HISTORY = generate(60, seed=17)


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:  # the module's database: fresh tables for each test
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        yield engine
    finally:
        await engine.dispose()


async def apply(engine: AsyncEngine, events: list[Event]) -> None:
    async with engine.begin() as conn:
        failed = await conn.run_sync(lambda c: apply_batch(c, events, HASHER, Phases.of(PHASES)))
    assert not failed


async def stored_previous_days(engine: AsyncEngine) -> dict[str, tuple]:
    f = LIVE.facts.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(f.key, f.previous_day, f.previous_category_day).where(f.kind.in_(RANGE_KINDS))
        )
        return {row[0]: (row[1], row[2]) for row in rows}


async def test_batches_in_any_order_link_facts_as_the_rebuild_does(engine: AsyncEngine) -> None:
    events = list(HISTORY.events)
    random.Random(5).shuffle(events)
    for start in range(0, len(events), 100):
        await apply(engine, events[start : start + 100])
    assert await stored_previous_days(engine) == previous_days(project(HISTORY.events).facts.items())


def session_on(template: SessionRecorded, day: date) -> SessionRecorded:
    at = datetime.combine(day, time(9), tzinfo=UTC)
    return template.model_copy(update={"session_id": str(uuid.uuid4()), "held_on": day, "at": at})


async def test_two_replicas_adding_facts_of_one_woman_at_once(engine: AsyncEngine) -> None:
    case = next(c for c in HISTORY.cases if c.sessions)
    mine = [e for e in HISTORY.events if getattr(e, "case_id", None) == case.case_id]
    template = next(e for e in mine if isinstance(e, SessionRecorded)).model_copy(update={"province": "92"})
    opened = next(e for e in mine if isinstance(e, CaseOpened))
    earlier = [session_on(template, date(2025, 1, 10)), session_on(template, date(2025, 4, 10))]
    await apply(engine, [opened, *earlier])
    # Two more sessions between those, in periods she was already counted in: no new distinct
    # claim, so nothing else makes the second replica wait for the first.
    first, second = session_on(template, date(2025, 1, 20)), session_on(template, date(2025, 1, 25))
    phases = Phases.of(PHASES)
    async with engine.connect() as one, engine.connect() as two:
        t1 = await one.begin()
        await one.run_sync(lambda c: apply_batch(c, [first], HASHER, phases))

        async def other_replica() -> None:
            async with two.begin():
                await two.run_sync(lambda c: apply_batch(c, [second], HASHER, phases))

        task = asyncio.create_task(other_replica())
        await asyncio.sleep(0.5)  # the other replica is in its batch, waiting for this one
        await t1.commit()
        await task
    f = LIVE.facts.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(f.key, f.kind, f.case_hash, f.province, f.day, f.category).where(f.kind == "session")
            )
        ).all()
    assert len(rows) == 4
    assert await stored_previous_days(engine) == previous_days((row[0], Fact(*row[1:])) for row in rows)


async def stored_dims(engine: AsyncEngine) -> dict[str, tuple]:
    f = LIVE.facts.c
    async with engine.connect() as conn:
        rows = await conn.execute(select(f.key, *(f[n] for n in DIMENSIONS)).where(f.kind.in_(RANGE_KINDS)))
        return {row[0]: tuple(row[1:]) for row in rows}


@pytest.mark.parametrize("opened_first", [True, False])
async def test_one_replica_opens_her_case_while_another_counts_her_session(
    engine: AsyncEngine, opened_first: bool
) -> None:
    """The replica counting her session does not see her case yet (not committed): her fact is
    written with ``?``; whichever commits second gives it her categories."""
    case = next(c for c in HISTORY.cases if c.sessions)
    mine = [e for e in HISTORY.events if getattr(e, "case_id", None) == case.case_id]
    opened = next(e for e in mine if isinstance(e, CaseOpened))
    session = next(e for e in mine if isinstance(e, SessionRecorded))
    first, second = ([opened], [session]) if opened_first else ([session], [opened])
    phases = Phases.of(PHASES)
    async with engine.connect() as one, engine.connect() as two:
        t1 = await one.begin()
        await one.run_sync(lambda c: apply_batch(c, first, HASHER, phases))

        async def other_replica() -> None:
            async with two.begin():
                await two.run_sync(lambda c: apply_batch(c, second, HASHER, phases))

        task = asyncio.create_task(other_replica())
        await asyncio.sleep(0.5)  # the other replica is in its batch, waiting for this one
        await t1.commit()
        await task
    wanted = project([opened, session])
    dims = wanted.cases[HASHER("case", case.case_id)][1:]
    stored = await stored_dims(engine)
    assert stored and set(stored.values()) == {dims}


async def test_reports_read_on_postgresql_equal_those_on_sqlite(engine: AsyncEngine) -> None:
    """The report queries (histograms joined in text, distinct counts from the facts) give the same
    tables on production's database as on SQLite."""
    state = project(HISTORY.events)
    async with engine.begin() as conn:
        await conn.run_sync(write_memory_state, LIVE, state)
    phases = Phases.of(PHASES)
    checks = [
        (None, None, ()),
        (date(2025, 1, 1), date(2025, 12, 31), ("province", "return_kind")),
        (date(2025, 7, 1), date(2025, 9, 30), ("age_band",)),
        (date(2025, 6, 15), date(2025, 7, 14), ("age_band",)),  # days and facts
        (date(2024, 11, 3), date(2025, 8, 17), ("province", "age_band")),  # blocks of periods and days
        (*PHASES["phase-1"], ("province", "migration_kind", "age_band")),
    ]

    def reports(session: Session) -> list[dict]:
        out = []
        for start, end, group_by in checks:
            q = CubeQuery.over(start, end, phases, (), group_by)
            out.append(render(run_report(session, q)))
        return out

    async with AsyncSession(engine) as session:
        on_postgres = await session.run_sync(reports)
    with Session(tables_of(state)) as session:
        on_sqlite = reports(session)
    assert any(r["totals"]["median_days_to_completion"] for r in on_sqlite)
    assert on_postgres == on_sqlite


async def test_replicas_appending_to_one_histogram_lose_no_day(engine: AsyncEngine) -> None:
    """A histogram is one row whose writes append their pairs in the upsert: two replicas writing
    it at once both land (the second waits for the first's row lock), and a compaction skips a row
    another replica holds rather than wait for it (no deadlock between replicas)."""
    key = ("M2025-07", "31", "legal", "*", "*", "*", "*")

    def cells(*days: int) -> list[tuple[tuple[str, ...], int]]:
        return list(Counter((*key, f"{DAYS_TO_COMPLETION}{d}") for d in days).items())

    async with engine.begin() as conn:  # the row, appended to until the next write compacts it
        for n in range(COMPACT_AFTER - 1):
            await conn.run_sync(increment_cells, LIVE.cube, cells(n))
    async with engine.connect() as one, engine.connect() as two:
        t1 = await one.begin()
        await one.run_sync(increment_cells, LIVE.cube, cells(3, 3))  # due now; compacted by this write

        async def other_replica() -> None:
            async with two.begin():
                await two.run_sync(increment_cells, LIVE.cube, cells(40))

        task = asyncio.create_task(other_replica())
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting for the row, not lost
        await t1.commit()
        await task
    wanted = {(*key, f"{DAYS_TO_COMPLETION}{d}"): 1 for d in range(COMPACT_AFTER - 1)}
    wanted[(*key, f"{DAYS_TO_COMPLETION}3")] += 2
    wanted[(*key, f"{DAYS_TO_COMPLETION}40")] = 1
    async with engine.connect() as conn:
        assert await conn.run_sync(cube_contents, LIVE) == wanted
    # Due for compaction, but held by a replica: another's compaction skips it at once.
    async with engine.begin() as conn:
        await conn.execute(update(LIVE.cube).values(appends=COMPACT_AFTER))
    async with engine.connect() as one, engine.connect() as two:
        t1 = await one.begin()
        await one.execute(update(LIVE.cube).values(value=LIVE.cube.c.value + 0))  # holds the row
        async with two.begin():
            skipped = await asyncio.wait_for(two.run_sync(compact_histograms, LIVE.cube), 5)
        assert skipped == 0
        await t1.rollback()
    async with engine.begin() as conn:
        assert await conn.run_sync(compact_histograms, LIVE.cube) == 1
        assert await conn.run_sync(cube_contents, LIVE) == wanted


async def live_cube(engine: AsyncEngine) -> dict:
    async with engine.connect() as conn:
        return await conn.run_sync(cube_contents, LIVE)


async def table_rows(engine: AsyncEngine, table: Table) -> list[tuple]:
    async with engine.connect() as conn:
        return sorted(tuple(row) for row in await conn.execute(select(table)))


@pytest.mark.timeout(120)
async def test_rebuild_on_postgresql_equals_live_and_keeps_keys_and_indexes(
    engine: AsyncEngine, pg_url: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    """The rebuild bulk-loads PostgreSQL with ``COPY`` into tables whose primary keys are added after
    the rows: every table equals what the live batches wrote (times included), and after two swaps
    the live tables still have their primary keys (they refuse a duplicate) and indexes."""
    events = generate(150, seed=23).events
    opened = [n for n, event in enumerate(events) if isinstance(event, CaseOpened)]
    events = [event for n, event in enumerate(events) if n not in opened[:5]]  # pending figures too
    await publish_all(nats_server.url, events)
    for start in range(0, len(events), 200):
        await apply(engine, events[start : start + 200])
    settings = ReportingSettings(
        database_url=pg_url,
        bus=BusSettings(nats_url=nats_server.url),
        platform=PlatformSettings(data_dir=tmp_path),
        phases=PHASES,
        hash_key=HASHER_KEY,
    )
    kept = await rebuild(settings, engine=engine, swap_tables=False)
    assert kept.events == len(events) and kept.skipped == 0
    suffix = kept.tables.removeprefix("rpt_*")
    fresh = projection_tables(MetaData(), suffix)
    assert await compare(engine, suffix) == (0, 0, 0)  # histograms compared by their days
    others = list(zip(LIVE.all(), fresh.all(), strict=True))[1:]
    for live_table, fresh_table in others:
        live_rows = await table_rows(engine, live_table)
        assert live_rows and await table_rows(engine, fresh_table) == live_rows, live_table.name
    before = await live_cube(engine), {table.name: await table_rows(engine, table) for table, _ in others}
    for _ in range(2):  # the second one replaces tables that got their names by a rename
        assert (await rebuild(settings, engine=engine)).swapped
    assert (await live_cube(engine), {t.name: await table_rows(engine, t) for t, _ in others}) == before
    async with engine.connect() as conn:
        for table in LIVE.all():
            keys = await conn.run_sync(lambda c, t=table: inspect(c).get_pk_constraint(t.name))
            assert keys["constrained_columns"] == [column.name for column in table.primary_key]
            indexes = await conn.run_sync(lambda c, t=table: inspect(c).get_indexes(t.name))
            assert len(indexes) == len(table.indexes), table.name
    async with engine.connect() as conn:  # the planner has the new tables' statistics
        for table in (LIVE.cube, LIVE.facts):
            found = await conn.exec_driver_sql(
                f"SELECT count(*) FROM pg_stats WHERE tablename = '{table.name}'"
            )
            assert found.scalar_one() > 0, table.name
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            key = (await conn.execute(select(LIVE.cases.c.case_hash).limit(1))).scalar_one()
            await conn.execute(
                insert(LIVE.cases).values(**dict(zip(LIVE.cases.c.keys(), [key, *"abcde"], strict=True)))
            )
