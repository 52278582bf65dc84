"""The rebuild's stream reader (``services/reporting/replay.py``) against a real nats-server: every
message once and in order, also when its handler makes reading wait (a rebuild writing out its
figures) for longer than the reader takes for a stalled stream; and a rebuild that fails midway
leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig
from sqlalchemy import Connection, Table, inspect

from services.reporting import rebuild as rebuild_module
from services.reporting import replay
from services.reporting import store as store_module
from services.reporting.replay import Interceptor, read_stream
from services.reporting.rollup import Row
from services.reporting.settings import ReportingSettings
from shared.db import make_engine
from shared.natsserver import NatsServer
from shared.settings import BusSettings, PlatformSettings
from tests.integration.test_reporting_acceptance import publish_all
from tests.unit.test_reporting_history import PHASES, generate

N = 3500


@pytest.mark.timeout(60)
async def test_a_handler_that_makes_reading_wait_loses_nothing(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream counts as stalled after half a second without a message; the handler then makes
    # reading wait three seconds. Without the pause being known, the reader would ask the server
    # whether the last message still exists, on a connection nobody reads: no answer in time.
    monkeypatch.setattr(replay, "IDLE_END", 0.5)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream(timeout=1.0)
        await js.add_stream(StreamConfig(name="REPLAY_T", subjects=["replay.t.>"]))
        for start in range(0, N, 500):
            await asyncio.gather(
                *(js.publish(f"replay.t.{n}", str(n).encode()) for n in range(start, start + 500))
            )
        bodies: list[int] = []
        waits: list[float] = []

        async def slow() -> None:
            started = asyncio.get_running_loop().time()
            await asyncio.sleep(3.0)
            waits.append(asyncio.get_running_loop().time() - started)

        def handle(headers: dict[str, str] | None, body: bytes) -> Awaitable[None] | None:
            bodies.append(int(body))
            return slow() if len(bodies) in (1200, 2000) else None

        interceptor = Interceptor(nc)
        seen = await read_stream(js, interceptor, "REPLAY_T", 1, N, handle)
        assert seen == N
        assert bodies == sorted(bodies) and len(set(bodies)) == N  # every message once, in order
        assert len(waits) == 2 and not interceptor.paused
    finally:
        await nc.close()


@pytest.mark.timeout(120)
async def test_a_rebuild_that_fails_leaves_no_tables_behind(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fresh tables are created before the replay, and the second write of cube rows into
    # them (the histograms' rows) fails: they must go with the failed rebuild.
    await publish_all(nats_server.url, generate(200, seed=3).events)
    settings = ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}",
        bus=BusSettings(nats_url=nats_server.url),
        platform=PlatformSettings(data_dir=tmp_path),
        phases=PHASES,
        rebuild_figures=1_000,
    )
    writes: list[int] = []
    real = store_module.write_rows

    def failing(conn: Connection, table: Table, rows: tuple[list[Row], list[Row]], *, add: bool) -> bool:
        writes.append(1)
        if len(writes) == 2:
            raise RuntimeError("disk full")
        return real(conn, table, rows, add=add)

    monkeypatch.setattr(store_module, "write_rows", failing)
    engine = make_engine(settings.database_url)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            await rebuild_module.rebuild(settings, engine=engine)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert len(writes) == 2
        assert "rpt_cube" in names and not [n for n in names if "__b" in n]
    finally:
        await engine.dispose()
