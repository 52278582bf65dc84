"""``osso reporting rebuild`` as ops run it: a separate process against a real nats-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from services.reporting.store import LIVE
from shared.natsserver import NatsServer
from tests.integration.test_reporting_acceptance import publish_all
from tests.unit.test_reporting_history import generate

pytestmark = pytest.mark.e2e


def test_rebuild_command_replays_the_streams_and_swaps(tmp_path: Path, nats_server: NatsServer) -> None:
    history = generate(20, seed=9)
    asyncio.run(publish_all(nats_server.url, history.events))
    db = tmp_path / "reporting.db"
    env = {
        "OSSO_DATA_DIR": str(tmp_path),
        "OSSO_REPORTING_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "PATH": str(Path(sys.executable).parent),
    }
    for swap in ("--no-swap", "--swap"):
        out = subprocess.run(
            [sys.executable, "-m", "deploy", "reporting", "rebuild", "--nats-url", nats_server.url, swap],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"replayed {len(history.events)} events (0 skipped" in out.stdout
    assert "now live" in out.stdout
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        opened = conn.execute(
            select(LIVE.cube.c.value).where(
                LIVE.cube.c.level == "all", LIVE.cube.c.period == "ALL", LIVE.cube.c.metric == "women_reached"
            )
        ).all()
    assert sum(v for (v,) in opened) == len({c.case_id for c in history.cases if c.sessions})
