"""The rebuild's stream reader (``services/reporting/replay.py``) against a real nats-server: every
message of a range once and in order, a handler's error raised; and a rebuild that fails midway
leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig
from sqlalchemy import Connection, MetaData, Table, inspect

from services.reporting import rebuild as rebuild_module
from services.reporting import store as store_module
from services.reporting.replay import Interceptor, read_stream
from services.reporting.spreader import Spreader, SpreaderFailed
from services.reporting.store import ProjectionTables
from shared.db import make_engine
from shared.natsserver import NatsServer
from tests.integration.test_reporting_acceptance import publish_all, settings_for
from tests.unit.test_reporting_history import generate, project

N = 3500


@pytest.mark.timeout(60)
async def test_every_message_of_a_range_once_in_order_and_a_handlers_error_raised(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream(timeout=1.0)
        await js.add_stream(StreamConfig(name="REPLAY_T", subjects=["replay.t.>"]))
        for start in range(0, N, 500):
            await asyncio.gather(
                *(js.publish(f"replay.t.{n}", str(n).encode()) for n in range(start, start + 500))
            )
        bodies: list[int] = []
        interceptor = Interceptor(nc)
        # Sequence n + 1 holds n: from the 1,001st message to the one before last.
        seen = await read_stream(js, interceptor, "REPLAY_T", 1001, N - 1, lambda h, b: bodies.append(int(b)))
        assert seen == N - 1001 and bodies == list(range(1000, N - 1))

        def failing(headers: dict[str, str] | None, body: bytes) -> None:
            if int(body) == 2000:
                raise ValueError("cannot apply")

        with pytest.raises(ValueError, match="cannot apply"):
            await read_stream(js, interceptor, "REPLAY_T", 1, N, failing)
    finally:
        await nc.close()


@pytest.mark.parametrize("where", ["parent", "child"])
@pytest.mark.timeout(120)
async def test_a_rebuild_that_fails_leaves_no_tables_behind(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # The fresh tables are created before the replay. Then either this process's second write of
    # rows into them fails, or the process spreading the figures and writing the cube dies while
    # it writes (kill -9): the fresh tables (and the cube's scratch file) go with the failed rebuild.
    await publish_all(nats_server.url, generate(200, seed=3).events)
    settings = settings_for(tmp_path, nats_server.url).model_copy(update={"rebuild_figures": 1_000})
    writes: list[int] = []
    real_rows, real_write = rebuild_module.write_memory_rows, Spreader.write

    def failing(
        conn: Connection, tables: ProjectionTables, table: Table, rows: list[tuple[object, ...]]
    ) -> None:
        writes.append(1)
        if len(writes) == 2:
            raise RuntimeError("disk full")
        real_rows(conn, tables, table, rows)

    async def killed(self: Spreader, database_url: str, suffix: str, chunk: int = 1) -> int:
        writing = asyncio.ensure_future(real_write(self, database_url, suffix, chunk=1))
        await asyncio.sleep(0.3)  # a row a chunk: it is still writing
        assert not writing.done()
        writes.append(1)
        self._process.kill()
        return await writing

    if where == "parent":
        monkeypatch.setattr(rebuild_module, "write_memory_rows", failing)
    else:
        monkeypatch.setattr(Spreader, "write", killed)
    engine = make_engine(settings.database_url)
    try:
        expected = "disk full" if where == "parent" else "ended \\(exit code -9\\)"
        with pytest.raises((RuntimeError, SpreaderFailed), match=expected):
            await rebuild_module.rebuild(settings, engine=engine)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert len(writes) == (2 if where == "parent" else 1)
        assert "rpt_cube" in names and not [n for n in names if "__b" in n]
        assert not list(tmp_path.glob("*.scratch"))  # noqa: ASYNC240
    finally:
        await engine.dispose()


@pytest.mark.timeout(120)
async def test_a_swapped_rebuild_leaves_the_planner_statistics_of_the_live_tables(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # SQLite keeps a table's statistics under its old name when it is renamed: the swap's fresh
    # tables would have none (reports planned on guesses) until the service restarts.
    await publish_all(nats_server.url, generate(200, seed=4).events)
    settings = settings_for(tmp_path, nats_server.url)
    engine = make_engine(settings.database_url)
    try:
        for _ in range(2):  # the second replaces tables that have statistics
            await rebuild_module.rebuild(settings, engine=engine)
        async with engine.connect() as conn:
            stats = {
                (tbl, idx) for tbl, idx in await conn.exec_driver_sql("SELECT tbl, idx FROM sqlite_stat1")
            }
            facts = store_module.LIVE.facts.name
            indexes = await conn.run_sync(lambda c: inspect(c).get_indexes(facts))
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert not [name for name in names if name.endswith("__retired") or "__b" in name]
            # Each index that holds rows (here all but completed referrals with an earlier one).
            assert len([index for index in indexes if (facts, index["name"]) in stats]) >= 2
            assert {tbl for tbl, _ in stats} >= {store_module.LIVE.cube.name, facts}
    finally:
        await engine.dispose()


async def test_retired_tables_are_emptied_a_few_rows_a_transaction_then_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A DROP of a big table holds SQLite's one write lock while it reads every page: live
    # consumers would wait seconds a gigabyte. Emptied in small transactions, they wait less.
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(store_module.metadata.create_all)
            await conn.run_sync(
                store_module.write_memory_state, store_module.LIVE, project(generate(40, seed=6).events)
            )
            fresh = store_module.projection_tables(MetaData(), "__bnew")
            await conn.run_sync(fresh.cube.metadata.create_all)
            await conn.run_sync(store_module.swap, fresh)  # the filled tables are retired
            cells = (await conn.exec_driver_sql('SELECT count(*) FROM "rpt_cube__retired"')).scalar_one()
        deletes: list[int] = []
        real = store_module.delete_some

        def counted(conn: Connection, name: str, key: list[str], rows: int) -> int:
            deletes.append(real(conn, name, key, rows))
            return deletes[-1]

        monkeypatch.setattr(rebuild_module, "delete_some", counted)
        assert await rebuild_module.retire(engine, rows=100) == 5
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert cells > 1000 and sum(deletes) > cells - 100 and max(deletes) == 100
        assert "rpt_cube" in names and not [name for name in names if name.endswith("__retired")]
    finally:
        await engine.dispose()
