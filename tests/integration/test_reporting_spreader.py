"""The rebuild's spreading process (``services/reporting/spreader.py``), a real child process
writing a real SQLite file: the cube it writes is the one the figures make, and a failure in it
reaches the rebuild with its traceback, leaving no scratch file behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import MetaData

from services.reporting.periods import Phases
from services.reporting.projections import Hasher, Projection
from services.reporting.rollup import DeferredState
from services.reporting.spreader import Spreader, SpreaderFailed, scratch_file
from services.reporting.store import cube_contents, metadata, projection_tables
from shared.db import make_engine
from tests.unit.test_reporting_history import PHASES, generate, project


@pytest.mark.parametrize("at_once", [10**9, 0], ids=["one transfer", "a level a transaction"])
@pytest.mark.timeout(60)
async def test_the_child_writes_the_cube_the_figures_make(tmp_path: Path, at_once: int) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    events = generate(150, seed=21).events
    state = DeferredState(limit=1_000)
    spreader = Spreader()
    state.sink = spreader.add
    projection = Projection(state, Hasher(b"k" * 32), Phases.of(PHASES))
    for event in events:
        projection.apply(event)
        state.spread_if_full()
    state.spread()
    engine = make_engine(url)
    fresh = projection_tables(MetaData(), "__btest")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(fresh.cube.metadata.create_all)
        written = await spreader.write(url, "__btest", chunk=500, at_once=at_once)  # several chunks
        async with engine.connect() as conn:
            cells = await conn.run_sync(cube_contents, fresh)
            indexes = await conn.exec_driver_sql(
                f"SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{fresh.cube.name}'"
            )
            names = {row[0] for row in indexes}
    finally:
        spreader.close()
        await engine.dispose()
    expected = {cell: value for cell, value in project(events).cube.items() if value}
    assert state.spreads > 5 and written > 1000 and spreader.peak_mib > 20  # numpy alone is more
    assert cells == expected
    assert f"ix_{fresh.cube.name}_due" in names  # dropped for the copy, built after it
    assert not list(tmp_path.glob("*.scratch"))  # noqa: ASYNC240


@pytest.mark.timeout(60)
async def test_a_failure_in_the_child_reaches_the_parent_with_its_traceback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reporting.db'}"
    # A figure the child cannot spread (a base is a tuple of periods and seven columns).
    spreader = Spreader()
    try:
        spreader.add([(("D2025-01-01",), 1)])  # type: ignore[list-item]
        with pytest.raises(SpreaderFailed, match="Traceback"):
            await spreader.write(url, "__bnone")
    finally:
        spreader.close()

    # Figures it can spread, but no fresh tables to write them to.
    spreader = Spreader()
    try:
        state = DeferredState(sink=spreader.add)
        projection = Projection(state, Hasher(b"k" * 32), Phases.of(PHASES))
        for event in generate(5, seed=2).events:
            projection.apply(event)
        state.spread()
        with pytest.raises(SpreaderFailed, match="no such"):
            await spreader.write(url, "__bnone")
    finally:
        spreader.close()
    assert scratch_file(url, "__bnone") == tmp_path / "reporting.db.rpt_cube__bnone.scratch"
    assert not list(tmp_path.glob("*.scratch"))  # noqa: ASYNC240
