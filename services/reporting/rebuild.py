"""``osso reporting rebuild``: replay every event stream from its first message into fresh
projection tables, then give them the live names.

1. Each stream is read from sequence 1 up to its last sequence at the start, by an ephemeral pull
   consumer (no acks, in order; ``replay.py``), and applied to an in-memory projection: the same rules the live
   consumers run (``projections.py``), so the result must equal the live tables.
   Its figures are kept as they come and every ``rebuild_figures`` of them sent to a process of
   its own (``spreader.py``) that spreads them over their cells in numpy (``rollup.py``: some 16
   bytes a cell) on the other core.
2. The projection is bulk-written into tables named ``rpt_*__b<random>``: the cube by that
   process, the other tables here, at the same time, a chunk of rows a transaction.
3. In one write transaction (live consumers wait for it): the events published since step 1 are
   applied to the fresh tables, and the tables are renamed. An event a live consumer applies again
   after the swap adds nothing: every figure is guarded by a keyed fact.
4. The old tables are dropped (:func:`retire`; on SQLite emptied first, a few rows a transaction).
Events that cannot be read, or that reporting cannot place (the ones live consumers dead-letter),
are skipped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from secrets import token_hex

import nats
from nats.js import JetStreamContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.reporting.batch import decode_fast
from services.reporting.handlers import SUBSCRIPTIONS, apply_to
from services.reporting.keys import hasher_for, phases_for
from services.reporting.periods import Phases
from services.reporting.projections import Hasher, Projection
from services.reporting.replay import Interceptor, read_stream
from services.reporting.rollup import DeferredState
from services.reporting.settings import ReportingSettings
from services.reporting.spreader import Spreader
from services.reporting.store import (
    LAYOUT,
    LIVE,
    ProjectionTables,
    analyze_tables,
    cube_contents,
    delete_some,
    layout_state,
    memory_rows,
    projection_tables,
    recreate_empty,
    rekey,
    retired_tables,
    swap,
    unkey,
    write_memory_rows,
)
from shared.db import create_schema, make_engine
from shared.envelope import MalformedEvent
from shared.events import Event
from shared.logs import get_logger

log = get_logger(__name__)

STREAMS = tuple(stream.name for _, stream in SUBSCRIPTIONS)


@dataclass
class RebuildResult:
    events: int = 0
    skipped: int = 0
    late_events: int = 0
    seconds: float = 0.0
    replay_seconds: float = 0.0
    #: How many times the figures kept in memory were sent to be spread over their cells.
    spreads: int = 0
    #: Cube rows written, and the peak memory (MiB) of the process that spread and wrote them.
    cube_rows: int = 0
    spreader_peak_mib: float = 0.0
    tables: str = ""
    swapped: bool = False
    last_seqs: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _decode(headers: dict[str, str] | None, body: bytes) -> Event | None:
    """The event, or None for what the live consumers dead-letter as malformed."""
    try:
        return decode_fast(headers, body).data
    except MalformedEvent:
        return None


async def replay_into(
    js: JetStreamContext,
    interceptor: Interceptor,
    projection: Projection,
    state: DeferredState,
    firsts: dict[str, int],
    lasts: dict[str, int],
    result: RebuildResult,
) -> None:
    """Apply every event of the streams in the given ranges to ``projection`` (over ``state``)."""

    def handle(headers: dict[str, str] | None, body: bytes) -> None:
        event = _decode(headers, body)
        if event is None:
            result.skipped += 1
            return
        try:
            projection.apply(event)
        except Exception:  # the live consumers dead-letter these too
            result.skipped += 1
            return
        result.events += 1
        state.spread_if_full()

    # Cases first: a figure for a case already opened goes straight to her categories, where one
    # read before her case.opened is counted as pending and moved (twice the work). The others at
    # once: the projection does not depend on the order of events across streams.
    first, *others = STREAMS
    await read_stream(js, interceptor, first, firsts.get(first, 1), lasts[first], handle)
    readers = [
        asyncio.ensure_future(read_stream(js, interceptor, s, firsts.get(s, 1), lasts[s], handle))
        for s in others
    ]
    try:
        await asyncio.gather(*readers)
    except BaseException:  # one failed: the others stop too, before the caller closes the connection
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        raise


async def _late_events(
    js: JetStreamContext, interceptor: Interceptor, firsts: dict[str, int], lasts: dict[str, int]
) -> list[Event]:
    events: list[Event] = []

    def keep(headers: dict[str, str] | None, body: bytes) -> None:
        event = _decode(headers, body)
        if event is not None:
            events.append(event)

    for stream in STREAMS:
        await read_stream(js, interceptor, stream, firsts[stream], lasts[stream], keep)
    return events


async def _last_seqs(js: JetStreamContext) -> dict[str, int]:
    return {stream: (await js.stream_info(stream)).state.last_seq for stream in STREAMS}


def _apply_late(
    conn: Connection, events: list[Event], hasher: Hasher, phases: Phases, tables: ProjectionTables
) -> int:
    applied = 0
    for event in events:
        nested = conn.begin_nested()
        try:
            apply_to(conn, event, hasher, phases, tables)
        except Exception:  # skipped, as the live consumer dead-letters it
            nested.rollback()
            continue
        nested.commit()
        applied += 1
    return applied


async def rebuild(
    settings: ReportingSettings, *, swap_tables: bool = True, engine: AsyncEngine | None = None
) -> RebuildResult:
    """Rebuild the projection from the streams; with ``swap_tables`` the fresh tables go live, else
    they stay beside the live ones (named in the result) for comparison."""
    started = time.perf_counter()
    hasher, phases = hasher_for(settings), phases_for(settings)
    own_engine = engine is None
    engine = engine or make_engine(settings.resolved_database_url("reporting"))
    from services.reporting.store import metadata

    await create_schema(engine, metadata)  # the live tables exist even on a first run
    await retire(engine)  # ones a stopped rebuild left
    result = RebuildResult()
    spreader = Spreader()  # started first: its imports overlap the start of the replay
    try:
        nc = await nats.connect(settings.bus.nats_url, name="osso-reporting-rebuild")
    except BaseException:
        spreader.close()
        raise
    try:
        interceptor = Interceptor(nc)
        js = nc.jetstream(timeout=30.0)  # API replies can queue behind a flood of replayed messages
        suffix = f"__b{token_hex(4)}"
        md = MetaData()
        fresh = projection_tables(md, suffix)
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
        try:
            state = DeferredState(limit=settings.rebuild_figures, sink=spreader.add)
            projection = Projection(state, hasher, phases)
            lasts = await _last_seqs(js)
            await replay_into(js, interceptor, projection, state, {}, lasts, result)
            state.spread()  # the figures kept since the last spread
            result.replay_seconds = time.perf_counter() - started
            result.spreads = state.spreads

            result.cube_rows = await _write_fresh(engine, suffix, fresh, state, spreader)
            result.spreader_peak_mib = spreader.peak_mib
            async with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: live writers wait
                now = await _last_seqs(js)
                late = await _late_events(js, interceptor, {s: lasts[s] + 1 for s in STREAMS}, now)
                result.late_events = await conn.run_sync(_apply_late, late, hasher, phases, fresh)
                result.events += result.late_events
                if swap_tables:
                    await conn.run_sync(swap, fresh, LIVE)
                result.last_seqs = now
        except BaseException:
            # The fresh tables exist from the start: a rebuild that fails, while replaying or
            # writing them, leaves none of them beside the live ones. The spreading process
            # ends first (a write of its own would hold the tables).
            spreader.close()
            with contextlib.suppress(Exception):
                await asyncio.shield(_drop(engine, md))
            raise
        result.swapped = swap_tables
        result.tables = "rpt_*" if swap_tables else f"rpt_*{suffix}"
        result.seconds = time.perf_counter() - started  # the fresh tables are live: the rest is cleanup
        await retire(engine)
        log.info(
            "reporting_rebuilt",
            events=result.events,
            skipped=result.skipped,
            cube_rows=result.cube_rows,
            seconds=round(result.seconds, 2),
            spreader_peak_mib=round(result.spreader_peak_mib),
        )
        return result
    finally:
        spreader.close()
        await nc.close()
        if own_engine:
            await engine.dispose()


async def _write_fresh(
    engine: AsyncEngine, suffix: str, fresh: ProjectionTables, state: DeferredState, spreader: Spreader
) -> int:
    """Write the fresh tables: the cube by the spreading process, which has its figures; the
    others here meanwhile, a chunk of rows a transaction, so that live consumers write between
    those; on SQLite the two take turns (:meth:`Spreader.turn`)."""
    cube = asyncio.ensure_future(spreader.write(engine.url.render_as_string(hide_password=False), suffix))
    dialect = engine.dialect.name
    try:
        others = [fresh.facts, fresh.cases, fresh.referrals, fresh.pending]
        async with spreader.turn(dialect), engine.begin() as conn:
            dropped = await conn.run_sync(unkey, others)
        for table, rows in memory_rows(fresh, state):  # the next rows are made while the child writes
            async with spreader.turn(dialect), engine.begin() as conn:
                await conn.run_sync(write_memory_rows, fresh, table, rows)
        async with spreader.turn(dialect), engine.begin() as conn:
            await conn.run_sync(rekey, dropped)
            await conn.run_sync(analyze_tables, others)
    except BaseException:
        cube.cancel()
        raise
    return await cube


async def retire(engine: AsyncEngine, rows: int = 20_000) -> int:
    """Drop the tables a swap retired; returns how many. On SQLite each is emptied first, ``rows``
    rows a transaction: a DROP reads every page of its table (seconds a gigabyte) holding the
    database's one write lock, while live consumers wait; between these deletes they write."""
    async with engine.connect() as conn:
        found = await conn.run_sync(retired_tables)
    for name, key in found:
        while engine.dialect.name == "sqlite":
            async with engine.begin() as conn:
                if await conn.run_sync(delete_some, name, key, rows) < rows:
                    break
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP TABLE "{name}"')
    return len(found)


async def _drop(engine: AsyncEngine, md: MetaData) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(md.drop_all)


async def ensure_layout(settings: ReportingSettings, engine: AsyncEngine) -> str:
    """Before the consumers start: give the live projection tables the current layout
    (``store.LAYOUT``). Empty ones are recreated; ones holding figures of an older layout are
    rebuilt from the streams, as ``osso reporting rebuild`` does (projections are rebuildable by
    design, and the swap stamps the layout). Returns what was found (``store.layout_state``)."""
    async with engine.begin() as conn:
        found = await conn.run_sync(layout_state)
        if found == "empty":
            await conn.run_sync(recreate_empty)
    if found == "outdated":
        log.warning("reporting_layout_outdated", layout=LAYOUT, action="rebuild from the streams")
        await rebuild(settings, engine=engine)
    return found


async def compare(engine: AsyncEngine, suffix: str) -> tuple[int, int, int]:
    """(cells only live, cells only fresh, cells that differ) between the live and fresh cubes."""
    fresh = projection_tables(MetaData(), suffix)
    async with engine.connect() as conn:
        live_cells = await conn.run_sync(cube_contents, LIVE)
        fresh_cells = await conn.run_sync(cube_contents, fresh)
    only_live = len(live_cells.keys() - fresh_cells.keys())
    only_fresh = len(fresh_cells.keys() - live_cells.keys())
    differ = sum(1 for c in live_cells.keys() & fresh_cells.keys() if live_cells[c] != fresh_cells[c])
    return only_live, only_fresh, differ
