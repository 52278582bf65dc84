"""Summary query time over a reporting projection of 1,000,000 cases (target: <= 50 ms).

The projection is built with reporting's own rules (``Projection``) from generated two-year
histories in the five pilot provinces (the acceptance test's generator), 1,000 cases each. With
``--distinct 20000`` (the default) 20 different histories are applied, and the 1,000,000 cases are
those 20 again and again with fresh case ids: blocks with different women add up, so the cube is
the 20 histories' cube times their repetitions. That cube has the cells of 20,000 cases, not of
1,000,000 different ones: as many distinct cases fill many more cells (a day, province, category
and age band that 20,000 cases leave empty), so reads of days and of the full level read several
times more rows. ``--distinct 1000000`` builds every case's own history (about an hour here).
The case categories and the session/completion facts (read for ranges that are no
pre-aggregated period) are written for every one of the cases. All of it goes to a SQLite file
(kept in ``var/bench/``, reused by later runs), then each query is timed through the same code
the HTTP route runs (``run_report`` + ``render``), and through the HTTP app itself.

    .venv/bin/python bench/reporting_summary.py [--cases 1000000] [--distinct 20000] [--runs 40]
        [--rebuild-db | --rebuild-cube | --compact]
        [--postgres [DSN] [--load-postgres]]

Prints p50 and p95 in ms per query.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import Date, Engine, create_engine, event, func, insert, select
from sqlalchemy.orm import Session

from services.reporting import api
from services.reporting.periods import Phases
from services.reporting.projections import RANGE_KINDS, MemoryState, Projection, previous_days
from services.reporting.queries import render
from services.reporting.reads import CubeQuery
from services.reporting.settings import ReportingSettings
from services.reporting.store import LIVE, compact_histograms, increment_cells, insert_facts, metadata
from shared.auth import Role, mint_token
from shared.db import make_engine, make_sessionmaker
from shared.events import CaseOpened
from shared.runtime import Runtime, create_http_app, settle_heap
from shared.settings import PlatformSettings
from tests.unit.test_reporting_history import HASHER, PHASES, generate

BLOCK = 1000
POOL = 20


#: Cells held in memory while building; more are added to the table (a build of 1,000,000 distinct
#: cases has tens of millions of cells, some 450 bytes each in a Counter).
CELLS_IN_MEMORY = 4_000_000


def build(path: Path, n_cases: int, *, cube_only: bool = False, distinct: int = POOL * BLOCK) -> None:
    """Write the projection of ``n_cases`` to ``path``, of which ``distinct`` have histories of their
    own (the others repeat them); with ``cube_only``, only its cube again (after a change to the
    cells a figure is written to: the facts and case categories stay as they are)."""
    engine = create_engine(f"sqlite:///{path}")
    # A gigabyte of page cache: cells added to a cube of tens of millions land all over it.
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA cache_size = -1000000"))
    if cube_only:
        LIVE.cube.drop(engine, checkfirst=True)
    else:
        path.unlink(missing_ok=True)
    metadata.create_all(engine)
    phases = Phases.of(PHASES)
    started = time.perf_counter()
    # The pool: histories of BLOCK cases applied with the projection's own rules. Block b is
    # pool[b % pool] with fresh ids (suffix b): cases are disjoint, so its figures are the pool
    # entry's, added once more; only the case hashes of its facts and categories differ.
    pool = max(1, min(distinct, n_cases) // BLOCK)
    blocks = n_cases // BLOCK
    cube: Counter = Counter()
    events = cells = 0

    def add_cube() -> None:
        nonlocal cube, cells
        with engine.begin() as conn:
            increment_cells(conn, LIVE.cube, cube.items())
        cells += len(cube)
        cube = Counter()

    for n in range(pool):
        history = generate(BLOCK, seed=10_000 + n).events
        state = MemoryState()
        projection = Projection(state, HASHER, phases)
        for e in history:
            projection.apply(e)
        times = len(range(n, blocks, pool))
        events += len(history) * times
        for cell, value in state.cube.items():
            cube[cell] += value * times
        if len(cube) >= CELLS_IN_MEMORY:
            add_cube()
        if not cube_only:
            case_ids = {HASHER("case", e.case_id): e.case_id for e in history if isinstance(e, CaseOpened)}
            for block in range(n, blocks, pool):
                _write_block(engine, state, case_ids, f"-b{block:07d}")
        if n % 50 == 0 or n == pool - 1:
            print(
                f"  {n + 1:,} of {pool:,} histories projected ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    add_cube()
    compact(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {LIVE.cube.name}" if cube_only else "ANALYZE")
    print(
        f"built {n_cases:,} cases ({pool * BLOCK:,} distinct; {events:,} events, about {cells:,} cell"
        f" writes) in {time.perf_counter() - started:.0f} s"
    )


def compact(engine: Engine) -> int:
    """Compact the histograms appended to 16 times or more, as live writes keep them (each write
    compacts up to 1,000 such rows): the build's few writes of millions of cells each left rows
    appended to up to 41 times, which a report then parsed (8 times the pairs). Returns how many."""
    done = 0
    with engine.begin() as conn:
        while found := compact_histograms(conn, LIVE.cube, limit=100_000):
            done += found
    return done


def _write_block(engine: Engine, state: MemoryState, case_ids: dict[str, str], suffix: str) -> None:
    """The session/completion facts and case categories of one block: a pool entry's, with its
    case ids made the block's own."""
    rehash = {h: HASHER("case", case_id + suffix) for h, case_id in case_ids.items()}
    facts = [
        (f"{k}{suffix}", f._replace(case_hash=rehash.get(f.case_hash, f.case_hash)))
        for k, f in state.facts.items()
        if f.kind in RANGE_KINDS
    ]
    cases = {rehash[h]: d for h, d in state.cases.items()}
    with engine.begin() as conn:
        # A block's women are its own: their previous days and categories are the block's.
        insert_facts(conn, LIVE.facts, dict(facts), previous_days(facts), cases.get)
        conn.execute(insert(LIVE.cases), [{"case_hash": h, **d._asdict()} for h, d in cases.items()])


QUERIES: list[tuple[str, dict]] = [
    ("all provinces, all time", {}),
    ("one province, one month", {"start": date(2025, 7, 1), "end": date(2025, 7, 31), "provinces": ("31",)}),
    (
        "one province, a year (12 months summed)",
        {"start": date(2025, 1, 1), "end": date(2025, 12, 31), "provinces": ("92",)},
    ),
    (
        "phase, grouped by province",
        {"start": PHASES["phase-1"][0], "end": PHASES["phase-1"][1], "group_by": ("province",)},
    ),
    (
        "quarter, grouped by age band",
        {"start": date(2025, 7, 1), "end": date(2025, 9, 30), "group_by": ("age_band",)},
    ),
    (
        "year, by province and return kind",
        {"start": date(2025, 1, 1), "end": date(2025, 12, 31), "group_by": ("province", "return_kind")},
    ),
    (
        "30 days across 1 July 2025 (days + facts)",
        {"start": date(2025, 6, 15), "end": date(2025, 7, 14), "provinces": ("31",)},
    ),
    (
        "30 days, grouped by age band",
        {"start": date(2025, 6, 15), "end": date(2025, 7, 14), "group_by": ("age_band",)},
    ),
    # A long range that is no kept period: read in blocks (its months and quarters, the days at
    # either end), women less her repeats across blocks from the facts.
    ("3 Nov 2024 to 17 Aug 2025 (blocks + facts)", {"start": date(2024, 11, 3), "end": date(2025, 8, 17)}),
]


def print_times(name: str, times: list[float], width: int) -> None:
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"  {name:<{width}} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")


def query_of(spec: dict, phases: Phases) -> CubeQuery:
    return CubeQuery.over(
        spec.get("start"), spec.get("end"), phases, spec.get("provinces", ()), spec.get("group_by", ())
    )


def time_queries(path: Path, runs: int) -> None:
    engine = create_engine(f"sqlite:///{path}")
    phases = Phases.of(PHASES)
    with Session(engine) as session:
        print(f"cube rows: {session.execute(select(func.count()).select_from(LIVE.cube)).scalar():,}")
        for name, spec in QUERIES:
            q = query_of(spec, phases)
            render(api.run_report(session, q))  # warm-up, not timed: pages from disk, statement cache
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                render(api.run_report(session, q))
                times.append((time.perf_counter() - t) * 1000)
            print_times(name, times, 45)


async def time_http(path: Path, runs: int) -> None:
    settings = ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{path}",
        platform=PlatformSettings(data_dir=path.parent),
        phases=PHASES,
    )
    rt = Runtime("reporting", settings, metadata)
    app = create_http_app(rt, [api.build_router(rt)], title="bench")
    token = mint_token(rt.jwt_secret, subject="bench", role=Role.CENTRAL_ADMIN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://r") as client:
        for name, params in (
            ("GET /v1/reports/summary", {}),
            ("GET /v1/reports/summary?province=31&period=2025-07", {"province": "31", "period": "2025-07"}),
            (
                "GET /v1/reports/summary?period=2025&group_by=province",
                {"period": "2025", "group_by": "province"},
            ),
        ):
            await client.get(
                "/v1/reports/summary", params=params, headers={"Authorization": f"Bearer {token}"}
            )
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                r = await client.get(
                    "/v1/reports/summary", params=params, headers={"Authorization": f"Bearer {token}"}
                )
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, r.text
            print_times(name, times, 60)
    await rt.engine.dispose()


POSTGRES = "postgresql://postgres@127.0.0.1:5432/osso_bench_reporting"


async def load_postgres(path: Path, dsn: str) -> None:
    """Copy the SQLite projection into a fresh PostgreSQL database (COPY, indexes after, ANALYZE)."""
    import asyncpg

    admin_dsn, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(f"{admin_dsn}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    engine = make_engine(_async_url(dsn))
    tables = (LIVE.cube, LIVE.facts, LIVE.cases)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=list(tables)))
        for table in tables:
            for index in table.indexes:
                await conn.run_sync(index.drop)
    await engine.dispose()
    source = sqlite3.connect(path)
    target = await asyncpg.connect(dsn)
    started = time.perf_counter()
    try:
        for table in tables:
            columns = [c.name for c in table.columns]
            rows = source.execute(f"SELECT {', '.join(columns)} FROM {table.name}")
            convert = [(date.fromisoformat if isinstance(c.type, Date) else None) for c in table.columns]
            while batch := rows.fetchmany(100_000):
                records = [
                    tuple(v if f is None or v is None else f(v) for v, f in zip(row, convert, strict=True))
                    for row in batch
                ]
                await target.copy_records_to_table(table.name, records=records, columns=columns)
            print(f"  {table.name} copied ({time.perf_counter() - started:.0f} s)", flush=True)
    finally:
        await target.close()
        source.close()
    engine = make_engine(_async_url(dsn))
    async with engine.begin() as conn:
        for table in tables:
            for index in table.indexes:
                await conn.run_sync(index.create)
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM ANALYZE")
    await engine.dispose()
    print(f"  indexed and analysed ({time.perf_counter() - started:.0f} s)", flush=True)


async def _has_projection(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", LIVE.cube.name))
    finally:
        await conn.close()


def _async_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def time_postgres(dsn: str, runs: int) -> None:
    """The same queries on PostgreSQL, as the HTTP route runs them (an async session, run_sync)."""
    engine = make_engine(_async_url(dsn))
    sessions = make_sessionmaker(engine)
    phases = Phases.of(PHASES)
    try:
        async with sessions() as session:
            count = await session.scalar(select(func.count()).select_from(LIVE.cube))
        print(f"cube rows: {count:,}")
        for name, spec in QUERIES:
            q = query_of(spec, phases)
            times = []
            for n in range(runs + 1):
                t = time.perf_counter()
                async with sessions() as session:
                    await session.run_sync(lambda s, q=q: render(api.run_report(s, q)))
                if n:  # the first is a warm-up
                    times.append((time.perf_counter() - t) * 1000)
            print_times(name, times, 45)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rebuild-db", action="store_true")
    parser.add_argument(
        "--distinct",
        type=int,
        default=POOL * BLOCK,
        help="cases with histories of their own (the others repeat them); at 20,000 (the default) the "
        "cube has the cells of 20,000 cases, far fewer than as many distinct cases as --cases would fill",
    )
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=POSTGRES,
        metavar="DSN",
        help=f"time the queries on PostgreSQL too (a copy of the SQLite projection; default {POSTGRES})",
    )
    parser.add_argument(
        "--load-postgres", action="store_true", help="copy the projection to PostgreSQL again"
    )
    parser.add_argument(
        "--rebuild-cube", action="store_true", help="write the cube again, keep the facts (minutes, not ~20)"
    )
    parser.add_argument(
        "--compact",
        action="store_true",
        help="compact the histograms of a projection built before builds did (then --load-postgres)",
    )
    args = parser.parse_args()
    suffix = "" if args.distinct == POOL * BLOCK else f"-d{args.distinct}"
    path = Path("var/bench") / f"reporting-{args.cases}{suffix}.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.rebuild_db or not path.exists():
        print(f"building a projection of {args.cases:,} cases in {path} ...", flush=True)
        build(path, args.cases, distinct=args.distinct)
    elif args.rebuild_cube:
        print(f"writing the cube of {args.cases:,} cases in {path} again ...", flush=True)
        build(path, args.cases, cube_only=True, distinct=args.distinct)
    elif args.compact:
        print(f"compacted {compact(create_engine(f'sqlite:///{path}')):,} histograms", flush=True)
    print(f"summary query over {args.cases:,} cases (run_report + render, in process):")
    settle_heap()  # as every service does once started (shared/runtime.py)
    time_queries(path, args.runs)
    print("through the HTTP app (in process, audit write included):")
    asyncio.run(time_http(path, args.runs))
    if args.postgres:
        if args.postgres == POSTGRES:  # the default database: one per projection
            args.postgres += suffix.replace("-", "_")
        fresh = args.load_postgres or args.rebuild_db or args.rebuild_cube
        if fresh or not asyncio.run(_has_projection(args.postgres)):
            print(f"copying the projection to {args.postgres} ...", flush=True)
            asyncio.run(load_postgres(path, args.postgres))
        print(f"summary query over {args.cases:,} cases on PostgreSQL (async session, as the route):")
        asyncio.run(time_postgres(args.postgres, args.runs))


if __name__ == "__main__":
    main()
