"""Projection tables of an older layout are rebuilt from the streams before the consumers start;
empty ones are recreated at once, with no bus needed; current ones are left alone."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import create_engine, insert, inspect, select

from services.reporting import handlers
from services.reporting.keys import hasher_for, phases_for
from services.reporting.projections import DIMENSIONS, MemoryState, Projection
from services.reporting.rebuild import ensure_layout
from services.reporting.settings import ReportingSettings
from services.reporting.store import LAYOUT, LIVE, cube_contents, layout, layout_state, metadata
from shared.db import make_engine
from shared.natsserver import NatsServer
from shared.runtime import Runtime
from shared.settings import BusSettings, PlatformSettings
from tests.integration.test_reporting_acceptance import publish_all
from tests.unit.test_reporting_history import PHASES, generate

#: rpt_fact as layout 1 made it: no previous days.
OLD_FACTS = (
    'CREATE TABLE rpt_fact ("key" VARCHAR(200) NOT NULL PRIMARY KEY, kind VARCHAR(16) NOT NULL, '
    "case_hash VARCHAR(32) NOT NULL, province VARCHAR(2) NOT NULL, day DATE NOT NULL, "
    "category VARCHAR(32) NOT NULL) WITHOUT ROWID"
)


def settings_for(tmp: Path, nats_url: str) -> ReportingSettings:
    return ReportingSettings(
        database_url=f"sqlite+aiosqlite:///{tmp / 'reporting.db'}",
        bus=BusSettings(nats_url=nats_url),
        platform=PlatformSettings(data_dir=tmp),
        phases=PHASES,
    )


def old_layout_with_figures(db: Path) -> None:
    """A database written by layout 1: no layout recorded, facts without previous days, a figure."""
    engine = create_engine(f"sqlite:///{db}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE rpt_fact")
        conn.exec_driver_sql(OLD_FACTS)
        conn.execute(
            insert(LIVE.cube).values(
                level="all", period="M2025-07", province="31", category="", channel="*",
                migration_kind="*", return_kind="*", age_band="*", metric="sessions", value=99,
            )
        )  # fmt: skip
    engine.dispose()


async def test_an_empty_projection_gets_the_current_layout_without_the_bus(tmp_path: Path) -> None:
    db = tmp_path / "reporting.db"
    engine = create_engine(f"sqlite:///{db}")
    metadata.create_all(engine)
    with engine.begin() as conn:  # layout 1's facts, still empty
        conn.exec_driver_sql("DROP TABLE rpt_fact")
        conn.exec_driver_sql(OLD_FACTS)
    settings = settings_for(tmp_path, "nats://127.0.0.1:1")  # nothing listens there
    live = make_engine(settings.resolved_database_url("reporting"))
    try:
        assert await ensure_layout(settings, live) == "empty"
        assert await ensure_layout(settings, live) == "current"
    finally:
        await live.dispose()
    with engine.connect() as conn:
        assert layout_state(conn) == "current"
        assert conn.execute(select(layout.c.version)).scalars().all() == [LAYOUT]
        assert "previous_day" in {c["name"] for c in inspect(conn).get_columns("rpt_fact")}


async def test_figures_of_an_older_layout_are_rebuilt_before_the_consumers_start(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    history = generate(40, seed=21)
    await publish_all(nats_server.url, history.events)
    old_layout_with_figures(tmp_path / "reporting.db")
    settings = settings_for(tmp_path, nats_server.url)
    rt = Runtime("reporting", settings, metadata)
    rt.include(handlers.build_router(rt))
    await rt.start()
    try:
        async with rt.engine.connect() as conn:
            assert await conn.run_sync(layout_state) == "current"
            cube = await conn.run_sync(cube_contents, LIVE)
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in sa.inspect(c).get_columns("rpt_fact")}
            )
    finally:
        await rt.stop()
    assert {"previous_day", "previous_category_day", *DIMENSIONS} <= columns
    state = MemoryState()
    projection = Projection(state, hasher_for(settings), phases_for(settings))
    for event in history.events:
        projection.apply(event)
    assert cube == state.figures()  # the stray figure of the old tables is gone
